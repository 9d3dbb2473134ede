package bronze

import (
	"errors"
	"fmt"
	"time"
	"unsafe"
)

// Reasons a message cannot be routed to a partition. The sink sends such
// messages to the dead-letter topic with the reason in a header.
var (
	ErrNotJSON          = errors.New("payload is not a UTF-8 JSON object")
	ErrNoTimestamp      = errors.New("timestamp field missing")
	ErrBadTimestamp     = errors.New("timestamp cannot be parsed")
	ErrTimestampOutside = errors.New("timestamp outside the accepted bounds")
)

// Bounds limit plausible event times. Zero fields do not limit.
type Bounds struct {
	Min       time.Time
	MaxFuture time.Duration
}

// A Timestamp reads the RFC 3339 timestamp in a top-level field of JSON
// object payloads and checks it against bounds. Build one per domain: the
// sink reads every message with it.
type Timestamp struct {
	field  string
	bounds Bounds
}

// NewTimestamp reads field, within b.
func NewTimestamp(field string, b Bounds) Timestamp {
	return Timestamp{field: field, bounds: b}
}

// EventTime reads one payload's timestamp: NewTimestamp(field, b).Of.
func EventTime(payload []byte, field string, b Bounds, now time.Time) (time.Time, error) {
	return NewTimestamp(field, b).Of(payload, now)
}

// Of extracts the payload's timestamp, in UTC; MaxFuture is measured from
// now. It validates the whole payload (a JSON object in UTF-8) and finds
// the field in the same pass (jsonscan.go).
func (ts Timestamp) Of(payload []byte, now time.Time) (time.Time, error) {
	m, ok := scanObject(payload, ts.field)
	if !ok {
		return time.Time{}, ErrNotJSON
	}
	if m.raw == nil || string(m.raw) == "null" {
		return time.Time{}, fmt.Errorf("%w: %q", ErrNoTimestamp, ts.field)
	}
	if m.raw[0] != '"' {
		return time.Time{}, fmt.Errorf("%w: %q is %s, not a string", ErrBadTimestamp, ts.field, m.raw)
	}
	str := unsafe.String(unsafe.SliceData(m.raw[1:]), len(m.raw)-2)
	if m.escaped {
		str, _ = unquote(m.raw) // valid: the scan checked it
	}
	t, err := time.Parse(time.RFC3339Nano, str)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q = %q", ErrBadTimestamp, ts.field, str)
	}
	t = t.UTC()
	b := ts.bounds
	if !b.Min.IsZero() && t.Before(b.Min) {
		return time.Time{}, fmt.Errorf("%w: %s is before %s", ErrTimestampOutside, str, b.Min.Format(time.RFC3339))
	}
	if b.MaxFuture > 0 && t.After(now.Add(b.MaxFuture)) {
		return time.Time{}, fmt.Errorf("%w: %s is more than %s in the future", ErrTimestampOutside, str, b.MaxFuture)
	}
	return t, nil
}

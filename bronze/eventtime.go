package bronze

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// Reasons a message cannot be routed to a partition. The sink sends such
// messages to the dead-letter topic with the reason in a header.
var (
	ErrNotJSON          = errors.New("payload is not a JSON object")
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
	path   string // field as a literal gjson path
	bounds Bounds
}

// NewTimestamp reads field, within b.
func NewTimestamp(field string, b Bounds) Timestamp {
	return Timestamp{field: field, path: escapePath(field), bounds: b}
}

// EventTime reads one payload's timestamp: NewTimestamp(field, b).Of.
func EventTime(payload []byte, field string, b Bounds, now time.Time) (time.Time, error) {
	return NewTimestamp(field, b).Of(payload, now)
}

// Of extracts the payload's timestamp, in UTC; MaxFuture is measured from
// now. It validates the whole payload but decodes only the one field
// (gjson; encoding/json into a map cost most of the sink's CPU).
func (ts Timestamp) Of(payload []byte, now time.Time) (time.Time, error) {
	if !gjson.ValidBytes(payload) || !isObject(payload) {
		return time.Time{}, ErrNotJSON
	}
	r := gjson.GetBytes(payload, ts.path)
	if !r.Exists() || r.Type == gjson.Null {
		return time.Time{}, fmt.Errorf("%w: %q", ErrNoTimestamp, ts.field)
	}
	if r.Type != gjson.String {
		return time.Time{}, fmt.Errorf("%w: %q is %s, not a string", ErrBadTimestamp, ts.field, r.Raw)
	}
	t, err := time.Parse(time.RFC3339Nano, r.Str)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q = %q", ErrBadTimestamp, ts.field, r.Str)
	}
	t = t.UTC()
	b := ts.bounds
	if !b.Min.IsZero() && t.Before(b.Min) {
		return time.Time{}, fmt.Errorf("%w: %s is before %s", ErrTimestampOutside, r.Str, b.Min.Format(time.RFC3339))
	}
	if b.MaxFuture > 0 && t.After(now.Add(b.MaxFuture)) {
		return time.Time{}, fmt.Errorf("%w: %s is more than %s in the future", ErrTimestampOutside, r.Str, b.MaxFuture)
	}
	return t, nil
}

func isObject(payload []byte) bool {
	for _, c := range payload {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}

// escapePath makes a field name a literal gjson path.
func escapePath(field string) string {
	var b strings.Builder
	for _, r := range field {
		if strings.ContainsRune(`.*?|#@\!=<>%`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

package bronze

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
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

// EventTime extracts the RFC 3339 timestamp in the top-level field of a JSON
// object payload and checks it against the bounds (MaxFuture is measured
// from now).
func EventTime(payload []byte, field string, b Bounds, now time.Time) (time.Time, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil || obj == nil {
		return time.Time{}, ErrNotJSON
	}
	raw, ok := obj[field]
	if !ok || string(raw) == "null" {
		return time.Time{}, fmt.Errorf("%w: %q", ErrNoTimestamp, field)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, fmt.Errorf("%w: %q is %s, not a string", ErrBadTimestamp, field, raw)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q = %q", ErrBadTimestamp, field, s)
	}
	t = t.UTC()
	if !b.Min.IsZero() && t.Before(b.Min) {
		return time.Time{}, fmt.Errorf("%w: %s is before %s", ErrTimestampOutside, s, b.Min.Format(time.RFC3339))
	}
	if b.MaxFuture > 0 && t.After(now.Add(b.MaxFuture)) {
		return time.Time{}, fmt.Errorf("%w: %s is more than %s in the future", ErrTimestampOutside, s, b.MaxFuture)
	}
	return t, nil
}

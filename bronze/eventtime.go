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

// EventTime extracts the RFC 3339 timestamp in the top-level field of a JSON
// object payload and checks it against the bounds (MaxFuture is measured
// from now). It validates the whole payload but decodes only that field:
// the sink calls it for every message (gjson; encoding/json into a map cost
// most of the sink's CPU).
func EventTime(payload []byte, field string, b Bounds, now time.Time) (time.Time, error) {
	if !gjson.ValidBytes(payload) || !isObject(payload) {
		return time.Time{}, ErrNotJSON
	}
	r := gjson.GetBytes(payload, escapePath(field))
	if !r.Exists() || r.Type == gjson.Null {
		return time.Time{}, fmt.Errorf("%w: %q", ErrNoTimestamp, field)
	}
	if r.Type != gjson.String {
		return time.Time{}, fmt.Errorf("%w: %q is %s, not a string", ErrBadTimestamp, field, r.Raw)
	}
	t, err := time.Parse(time.RFC3339Nano, r.Str)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q = %q", ErrBadTimestamp, field, r.Str)
	}
	t = t.UTC()
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

// pathSpecial marks the bytes gjson gives a meaning in a path.
var pathSpecial = func() (set [256]bool) {
	for _, c := range []byte(".*?|#@\\!=<>%") {
		set[c] = true
	}
	return set
}()

// escapePath makes a field name a literal gjson path. A plain name (the
// common case, checked for every message) is returned as it is.
func escapePath(field string) string {
	i := 0
	for i < len(field) && !pathSpecial[field[i]] {
		i++
	}
	if i == len(field) {
		return field
	}
	var b strings.Builder
	b.WriteString(field[:i])
	for ; i < len(field); i++ {
		if pathSpecial[field[i]] {
			b.WriteByte('\\')
		}
		b.WriteByte(field[i])
	}
	return b.String()
}

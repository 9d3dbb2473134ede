package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a duration that also takes days, for retention settings
// measured in weeks or years: 400d, 7d, 1d12h, 1h, 90s.
type Duration time.Duration

// Day is the unit of Duration's d suffix.
const Day = 24 * time.Hour

// ParseDuration parses a Go duration with an optional leading day count.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	days, rest, hasDays := strings.Cut(s, "d")
	if !hasDays {
		d, err := time.ParseDuration(s)
		return Duration(d), err
	}
	n, err := strconv.ParseUint(days, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	d := time.Duration(n) * Day
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		d += r
	}
	return Duration(d), nil
}

// UnmarshalYAML parses 7d, 36h, 1d12h or 90s.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("invalid duration %q", n.Value)
	}
	*d = v
	return nil
}

// MarshalYAML writes durations the way they are read.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String writes whole days as 7d and anything else as Go does (36h0m0s).
func (d Duration) String() string {
	t := time.Duration(d)
	if t > 0 && t%Day == 0 {
		return strconv.FormatInt(int64(t/Day), 10) + "d"
	}
	return t.String()
}

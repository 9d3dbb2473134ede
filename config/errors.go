package config

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one configuration problem, located by file, line and key path, or
// by the environment variable that set the key.
type Error struct {
	File string // config file, or "" when the value came from the environment
	Line int    // 1-based line, or 0 when unknown (a default or an env override)
	Env  string // the MEDALLION_* variable that set the key, if any
	Key  string // dotted key path, e.g. storage.url or gold[1].merge_keys
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Env != "":
		b.WriteString(e.Env)
		b.WriteString(" (environment)")
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File)
	}
	if e.Key != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Key)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one load. Loading reports them all at once
// so a user fixes a file in one pass.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// IsConfigError reports whether err came from loading or validating
// configuration. The CLI maps such errors to exit code 2.
func IsConfigError(err error) bool {
	var e *Error
	var es Errors
	return errors.As(err, &e) || errors.As(err, &es)
}

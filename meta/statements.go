package meta

import (
	"embed"
	"fmt"
	"strings"
)

//go:embed queries/*.sql
var queryFiles embed.FS

// statements are a dialect's named SQL statements, read from
// queries/<dialect>.sql: each starts at a "-- name: Name" line and runs
// to the next one. The SQL text lives in those files, not in Go.
type statements map[string]string

func loadStatements(dialect string) statements {
	body, err := queryFiles.ReadFile("queries/" + dialect + ".sql")
	if err != nil {
		panic(fmt.Sprintf("meta: no statements for %s: %v", dialect, err))
	}
	out := statements{}
	name := ""
	var text strings.Builder
	flush := func() {
		if name != "" {
			out[name] = strings.TrimSpace(text.String())
		}
		text.Reset()
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if n, ok := strings.CutPrefix(line, "-- name: "); ok {
			flush()
			name = strings.TrimSpace(n)
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		text.WriteString(line + "\n")
	}
	flush()
	return out
}

// get returns the named statement; a name missing from the file is a bug
// that the conformance suite finds on both stores.
func (s statements) get(name string) string {
	q, ok := s[name]
	if !ok {
		panic("meta: no statement named " + name)
	}
	return q
}

package meta

import (
	"embed"
	"fmt"
	"regexp"
	"strings"
)

//go:embed queries/*.sql
var queryFiles embed.FS

// statements are a dialect's named SQL statements, read from
// queries/common.sql and queries/<dialect>.sql: each starts at a
// "-- name: Name" line and runs to the next one. The SQL text lives in
// those files, not in Go. numbered turns common.sql's ?N parameters into
// the dialect's own.
type statements map[string]string

func loadStatements(dialect string, numbered func(string) string) statements {
	out := statements{}
	for name, q := range parseStatements("common") {
		out[name] = numbered(q)
	}
	for name, q := range parseStatements(dialect) {
		out[name] = q
	}
	return out
}

// questionParam is a ?N parameter; dollarParams its PostgreSQL form of ?N parameters.
var questionParam = regexp.MustCompile(`\?(\d+)`)

func dollarParams(q string) string { return questionParam.ReplaceAllString(q, "$$$1") }

func parseStatements(file string) statements {
	body, err := queryFiles.ReadFile("queries/" + file + ".sql")
	if err != nil {
		panic(fmt.Sprintf("meta: no statements in %s: %v", file, err))
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

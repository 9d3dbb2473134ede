package extract

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// relation is what an extract reads: a table or a SELECT, with the columns
// to mask.
type relation struct {
	from string
	mask map[string]string
}

// name says which relation, in errors.
func (r relation) name() string {
	if isQuery(r.from) {
		return "its query"
	}
	return r.from
}

func isQuery(from string) bool {
	f := strings.ToLower(withoutLeadingComments(from))
	return strings.HasPrefix(f, "select") || strings.HasPrefix(f, "with") || strings.HasPrefix(f, "(")
}

// withoutLeadingComments is a query's text from its first statement word.
func withoutLeadingComments(q string) string {
	for {
		q = strings.TrimSpace(q)
		switch {
		case strings.HasPrefix(q, "--"):
			_, rest, _ := strings.Cut(q, "\n")
			q = rest
		case strings.HasPrefix(q, "/*"):
			_, rest, _ := strings.Cut(q, "*/")
			q = rest
		default:
			return q
		}
	}
}

// sql is the relation as a FROM item (the query's last line may be a
// comment).
func (r relation) sql() string {
	if isQuery(r.from) {
		return "(" + r.from + "\n)"
	}
	return "(SELECT * FROM " + r.from + ")"
}

// columns describes the relation (no rows are read): its column names in
// order, and their types. A masked column it lacks is an error.
func (r relation) columns(ctx context.Context, conn *pgx.Conn) ([]string, map[string]string, error) {
	sd, err := conn.Prepare(ctx, "", "SELECT * FROM "+r.sql()+" t LIMIT 0")
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, len(sd.Fields))
	oids := make([]uint32, len(sd.Fields))
	for i, f := range sd.Fields {
		names[i], oids[i] = f.Name, f.DataTypeOID
	}
	rows, err := conn.Query(ctx, "SELECT format_type(oid, NULL) FROM unnest($1::oid[]) WITH ORDINALITY u(oid, n) ORDER BY n", oids)
	if err != nil {
		return nil, nil, err
	}
	typeNames, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil, err
	}
	types := map[string]string{}
	for i, n := range names {
		types[n] = typeNames[i]
	}
	for c := range r.mask {
		if _, ok := types[c]; !ok {
			return nil, nil, fmt.Errorf("no column %q to mask", c)
		}
	}
	return names, types, nil
}

// masked is the relation with its masked columns replaced by the hex
// SHA-256 of their text, so the raw values never leave the server.
func (r relation) masked(names []string) string {
	if len(r.mask) == 0 {
		return r.sql()
	}
	cols := make([]string, len(names))
	for i, n := range names {
		id := pgx.Identifier{n}.Sanitize()
		cols[i] = "m." + id
		if _, ok := r.mask[n]; ok {
			cols[i] = fmt.Sprintf("encode(sha256(convert_to(m.%s::text, 'UTF8')), 'hex') AS %s", id, id)
		}
	}
	return "(SELECT " + strings.Join(cols, ", ") + " FROM " + r.sql() + " m)"
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Package extract reads the operational PostgreSQL tables Medallion's
// domains come from (sources: in the configuration).
//
// This file is the incremental mode's reader: the rows of a table or query
// past a position, in (watermark, key) order, never skipping one. Two
// hazards make the naive "updated_at > last watermark" lose rows:
//   - ties: many rows share a watermark value, and a batch ends among them.
//     The position is the last row's (watermark, key), and the next read
//     starts strictly after that pair (keyset pagination), so a tie is
//     split across batches without loss.
//   - late commits: a transaction stamps its rows with now(), its start,
//     and commits after a later transaction's rows were read. The reader
//     reads only rows stamped before the horizon: the start of the oldest
//     transaction still open on the server (pg_stat_activity.xact_start),
//     or of the reading statement. Any row stamped earlier has committed
//     before the read's snapshot, so nothing can appear behind the position.
//
// The horizon needs the watermark to be set by the database's clock in the
// writing transaction (now(), a trigger, a column default), and the reader
// to see every session's transaction start (superuser, or
// pg_read_all_stats). A long open transaction holds the horizon back: the
// extract lags, it does not lose rows.
package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Position is where an incremental extract has got to: the watermark and
// key of the last row read, as PostgreSQL text. The zero Position is
// before every row.
type Position struct {
	Watermark string   `json:"watermark,omitempty"`
	Key       []string `json:"key,omitempty"`
	// NextOffset is past the bronze offsets the extract has used.
	NextOffset int64 `json:"next_offset,omitempty"`
	// Types are the watermark's and key's column types when the position
	// was taken: values of another type would not compare as they did.
	Types map[string]string `json:"types,omitempty"`
}

// IsZero reports whether p is before every row.
func (p Position) IsZero() bool { return p.Watermark == "" && len(p.Key) == 0 }

// String is p as it is stored in the meta store (JSON).
func (p Position) String() string {
	if p.IsZero() && p.NextOffset == 0 {
		return ""
	}
	b, _ := json.Marshal(p)
	return string(b)
}

// PositionText is a stored position of any mode as people read it: the
// watermark, the snapshot's time or the LSN ("" before the first).
func PositionText(stored string) string {
	var p struct {
		Watermark string `json:"watermark"`
		LSN       string `json:"lsn"`
	}
	if json.Unmarshal([]byte(stored), &p) != nil {
		return ""
	}
	if p.LSN != "" {
		return "LSN " + p.LSN
	}
	return p.Watermark
}

// PositionTime is the time of an incremental or snapshot position, when
// its watermark is a timestamp (as PostgreSQL or RFC 3339 writes it).
func PositionTime(stored string) (time.Time, bool) {
	w := PositionText(stored)
	for _, layout := range []string{"2006-01-02 15:04:05.999999-07", "2006-01-02 15:04:05.999999-07:00", time.RFC3339Nano} {
		if t, err := time.Parse(layout, w); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// ParsePosition reads a stored position ("" is the zero Position).
func ParsePosition(s string) (Position, error) {
	var p Position
	if s == "" {
		return p, nil
	}
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return p, fmt.Errorf("extract position %q: %w", s, err)
	}
	return p, nil
}

// Incremental reads the rows of From past a position.
type Incremental struct {
	// From is a table name or a SELECT; each of its rows becomes one JSON
	// object (row_to_json), nested values included.
	From string
	// Watermark is a timestamptz or timestamp column of From, set by the
	// database's clock when the row changes.
	Watermark string
	// Key is one or more columns that, with Watermark, identify a row.
	Key []string
	// Batch is the most rows a Read returns (default 10,000).
	Batch int
	// Mask hashes columns (column: "sha256", the hex SHA-256 of its text)
	// in the query itself, so the raw value never leaves the source.
	Mask map[string]string
}

// ErrCannotSeeTransactions means the reading role cannot see other
// sessions' transactions, so the horizon would be unsafe.
var ErrCannotSeeTransactions = errors.New("the reading role cannot see other sessions' open transactions (pg_stat_activity.xact_start): " +
	"GRANT pg_read_all_stats TO it, so that an incremental extract never misses a row committed late")

// Batch is what one Read returned.
type Batch struct {
	// Rows are JSON objects, in (watermark, key) order.
	Rows [][]byte
	// Next is the position after the last row (the read's position when
	// there are none).
	Next Position
}

// Read returns up to x.Batch rows of x.From past pos, stamped before the
// horizon, in (watermark, key) order. It runs one statement on conn, after
// describing x.From (see reader, which a run of many reads describes once).
func (x Incremental) Read(ctx context.Context, conn *pgx.Conn, pos Position) (Batch, error) {
	r, err := x.reader(ctx, conn)
	if err != nil {
		return Batch{}, err
	}
	return r.read(ctx, conn, pos)
}

// reader is an incremental extract whose relation is described: the
// column names and types its reads need.
type reader struct {
	x     Incremental
	names []string
	types map[string]string
}

// reader describes x's relation, and checks that the role sees other
// sessions' transactions (the horizon needs their starts). It turns JIT
// off for the session: a batch's keyset query is too short for the
// compilation to pay (it took more time than the query itself).
func (x Incremental) reader(ctx context.Context, conn *pgx.Conn) (reader, error) {
	if err := x.check(); err != nil {
		return reader{}, err
	}
	names, types, err := x.columnTypes(ctx, conn)
	if err != nil {
		return reader{}, err
	}
	var seeAll bool
	if err := conn.QueryRow(ctx, "SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')").Scan(&seeAll); err != nil {
		return reader{}, fmt.Errorf("incremental extract of %s: %w", x.describe(), err)
	}
	if !seeAll {
		return reader{}, ErrCannotSeeTransactions
	}
	if _, err := conn.Exec(ctx, "SET jit = off"); err != nil {
		return reader{}, fmt.Errorf("incremental extract of %s: %w", x.describe(), err)
	}
	return reader{x: x, names: names, types: types}, nil
}

// orderTypes are the types of the columns that order the extract.
func (r reader) orderTypes() map[string]string {
	out := map[string]string{}
	for _, c := range r.x.orderColumns() {
		out[c] = r.types[c]
	}
	return out
}

// sameTypes refuses a position taken when a column that orders the
// extract had another type.
func (r reader) sameTypes(pos Position) error {
	for _, c := range r.x.orderColumns() {
		if was, ok := pos.Types[c]; ok && was != r.types[c] {
			return fmt.Errorf("incremental extract of %s: column %q is now %s, but was %s when the position was taken, so the position no longer compares as it did: "+
				"start the extract anew with --reset (it reads every row again; silver's dedup absorbs them)", r.x.describe(), c, r.types[c], was)
		}
	}
	return nil
}

func (r reader) read(ctx context.Context, conn *pgx.Conn, pos Position) (Batch, error) {
	x := r.x
	q, args, err := x.query(r.names, r.types, pos)
	if err != nil {
		return Batch{}, err
	}
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return Batch{}, fmt.Errorf("read %s: %w", x.describe(), err)
	}
	defer rows.Close()
	out := Batch{Next: pos}
	for rows.Next() {
		var (
			row []byte
			w   *string
			key = make([]*string, len(x.Key))
		)
		dest := []any{&row, &w}
		for i := range key {
			dest = append(dest, &key[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return Batch{}, fmt.Errorf("read %s: %w", x.describe(), err)
		}
		next := Position{Watermark: *w, Key: make([]string, len(key))}
		for i, k := range key {
			if k == nil {
				return Batch{}, fmt.Errorf("read %s: key column %q is NULL in a row", x.describe(), x.Key[i])
			}
			next.Key[i] = *k
		}
		out.Rows = append(out.Rows, row)
		out.Next = next
	}
	if err := rows.Err(); err != nil {
		return Batch{}, fmt.Errorf("read %s: %w", x.describe(), err)
	}
	return out, nil
}

func (x Incremental) check() error {
	switch {
	case strings.TrimSpace(x.From) == "":
		return errors.New("an incremental extract needs a table or query")
	case x.Watermark == "":
		return fmt.Errorf("incremental extract of %s: no watermark column", x.describe())
	case len(x.Key) == 0:
		return fmt.Errorf("incremental extract of %s: no key: the watermark's ties need a unique tie-breaker", x.describe())
	}
	return nil
}

// orderColumns are the columns that order the extract: the watermark,
// then the key.
func (x Incremental) orderColumns() []string { return append([]string{x.Watermark}, x.Key...) }

func (x Incremental) describe() string { return relation{x.From, x.Mask}.name() }

// columnTypes maps the watermark and key columns to their types, from the
// relation's description (no rows are read), so that positions compare as
// the columns do.
func (x Incremental) columnTypes(ctx context.Context, conn *pgx.Conn) ([]string, map[string]string, error) {
	rel := relation{x.From, x.Mask}
	names, types, err := rel.columns(ctx, conn)
	if err != nil {
		return nil, nil, fmt.Errorf("incremental extract of %s: %w", x.describe(), err)
	}
	for _, c := range x.orderColumns() {
		if _, ok := types[c]; !ok {
			return nil, nil, fmt.Errorf("incremental extract of %s: no column %q", x.describe(), c)
		}
		if _, masked := x.Mask[c]; masked {
			return nil, nil, fmt.Errorf("incremental extract of %s: column %q orders the extract and cannot be masked", x.describe(), c)
		}
	}
	if t := types[x.Watermark]; t != "timestamp with time zone" && t != "timestamp without time zone" {
		return nil, nil, fmt.Errorf("incremental extract of %s: watermark column %q is %s; it must be a timestamp set by the database", x.describe(), x.Watermark, t)
	}
	return names, types, nil
}

// query is the read: the rows past pos (compared as the columns' types)
// and before the horizon, in order, straight from an index on (watermark,
// key) when there is one (no window or sort on the rows themselves).
func (x Incremental) query(names []string, types map[string]string, pos Position) (string, []any, error) {
	ident := func(c string) string { return "t." + pgx.Identifier{c}.Sanitize() }
	cols := x.orderColumns()
	var sel, order, lhs, rhs []string
	var args []any
	for i, c := range cols {
		sel = append(sel, fmt.Sprintf("%s::text AS c%d", ident(c), i))
		order = append(order, ident(c))
	}
	where := "t." + pgx.Identifier{x.Watermark}.Sanitize() + " < h.horizon::" + types[x.Watermark]
	if !pos.IsZero() {
		if len(pos.Key) != len(x.Key) {
			return "", nil, fmt.Errorf("incremental extract of %s: the stored position has %d key values, the key %d columns", x.describe(), len(pos.Key), len(x.Key))
		}
		values := append([]string{pos.Watermark}, pos.Key...)
		for i, c := range cols {
			args = append(args, values[i])
			lhs = append(lhs, ident(c))
			rhs = append(rhs, fmt.Sprintf("$%d::%s", len(args), types[c]))
		}
		where += fmt.Sprintf(" AND (%s) > (%s)", strings.Join(lhs, ", "), strings.Join(rhs, ", "))
	}
	batch := x.Batch
	if batch <= 0 {
		batch = 10_000
	}
	// The horizon: the start of the oldest transaction open on the server
	// (other than this one), or of this statement.
	q := fmt.Sprintf(`WITH h AS (
	SELECT least(statement_timestamp(), (SELECT min(xact_start) FROM pg_stat_activity
		WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid())) AS horizon
)
SELECT row_to_json(t) AS row, %[1]s
FROM %[2]s t, h
WHERE %[4]s
ORDER BY %[3]s
LIMIT %[5]d`,
		strings.Join(sel, ", "), relation{x.From, x.Mask}.masked(names), strings.Join(order, ", "), where, batch)
	return q, args, nil
}

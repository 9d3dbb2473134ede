// Package query runs SQL over the lake: every silver, gold and quarantine
// table is a DuckDB view named namespace.table (gold.orders_daily), whose
// rows are the table's live data files as planned by the Iceberg catalog,
// optionally as of an earlier snapshot. Medallion writes no delete files, so
// reading the planned files is exact.
package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/iceberg-go/catalog"

	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/lake"
)

// Session is one DuckDB connection with the lake's tables attached.
//
// Its views live in an in-memory catalog of its own, made the connection's
// default, so that sessions sharing one database (medallion serve) never
// read each other's views: each view reads the snapshot and partitions its
// own session planned.
type Session struct {
	conn    *sql.Conn
	copies  bool // COPY … TO may run (a locked database with an allowed folder)
	lake    *lake.Lake
	at      lake.Snapshot
	stage   string
	catalog string                  // the session's own catalog
	home    string                  // the connection's default catalog before
	ready   map[lake.TableID]string // table → the state and range its view reads
}

var sessions atomic.Int64

// Open starts a session reading the tables as of at (zero: current).
func Open(ctx context.Context, l *lake.Lake, db *duck.DB, at lake.Snapshot) (*Session, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	stage, err := db.TablesDir()
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &Session{conn: conn, lake: l, at: at, stage: stage, ready: map[lake.TableID]string{},
		catalog: fmt.Sprintf("session_%d", sessions.Add(1))}
	if err := conn.QueryRowContext(ctx, "SELECT current_database()").Scan(&s.home); err != nil {
		conn.Close()
		return nil, err
	}
	stmts := []string{"ATTACH ':memory:' AS " + duck.Ident(s.catalog), "USE " + duck.Ident(s.catalog)}
	for _, ns := range lake.Namespaces {
		stmts = append(stmts, "CREATE SCHEMA "+duck.Ident(s.catalog)+"."+duck.Ident(ns))
	}
	for _, stmt := range stmts {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			s.Close()
			return nil, fmt.Errorf("open a query session: %w", err)
		}
	}
	return s, nil
}

// OpenLocked locks db (Lock) and opens a session on it; with
// sb.AllowDir set, the session also runs COPY, which the lock confines to
// that folder.
func OpenLocked(ctx context.Context, l *lake.Lake, db *duck.DB, at lake.Snapshot, sb Sandbox) (*Session, error) {
	if err := Lock(ctx, db, sb); err != nil {
		return nil, err
	}
	s, err := Open(ctx, l, db, at)
	if err != nil {
		return nil, err
	}
	s.copies = sb.AllowDir != ""
	return s, nil
}

// Close drops the session's views and releases the connection. Staged
// files stay, for the database's other sessions, until the database
// closes or Evict removes them.
func (s *Session) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.conn.ExecContext(ctx, "USE "+duck.Ident(s.home))
	if err == nil {
		_, err = s.conn.ExecContext(ctx, "DETACH DATABASE IF EXISTS "+duck.Ident(s.catalog))
	}
	if err != nil {
		// The connection still belongs to this session: never pool it.
		s.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	return errors.Join(err, s.conn.Close())
}

// Conn is the session's DuckDB connection.
func (s *Session) Conn() *sql.Conn { return s.conn }

var tableRef = regexp.MustCompile(`(?i)\b(silver|gold|quarantine)\s*\.\s*"?([a-z_][a-z0-9_]*)"?`)

// TablesIn lists the lake tables (namespace.table) a statement names, once
// each, in order of appearance.
func TablesIn(stmt string) []lake.TableID {
	var out []lake.TableID
	seen := map[lake.TableID]bool{}
	for _, m := range tableRef.FindAllStringSubmatch(stmt, -1) {
		id := lake.TableID{Namespace: strings.ToLower(m[1]), Name: strings.ToLower(m[2])}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Prepare attaches every table the statement names, and only those (on S3
// their files are downloaded first), each as of the session's snapshot and
// with only the partitions its filters can select (see prune.go). It
// returns the statement's SELECT node, or nil when it is no single SELECT.
func (s *Session) Prepare(ctx context.Context, stmt string) (tree, error) {
	ids := TablesIn(stmt)
	readers := map[lake.TableID]*lake.Reader{}
	shapes := map[lake.TableID]shape{}
	for _, id := range ids {
		r, err := s.lake.Reader(ctx, id, s.at)
		if errors.Is(err, catalog.ErrNoSuchTable) {
			return nil, fmt.Errorf("table %s does not exist (run `medallion tables` to list them)", id)
		}
		if err != nil {
			return nil, err
		}
		readers[id], shapes[id] = r, shape{partition: r.PartitionColumn(), columns: r.Columns()}
	}
	sel, _ := oneSelect(parse(ctx, s.conn, stmt))
	within := ranges(stmt, sel, shapes)
	for _, id := range ids {
		var rng *lake.DateRange
		if r, ok := within[id]; ok {
			rng = &r
		}
		if err := s.attach(ctx, id, readers[id], rng); err != nil {
			return nil, err
		}
	}
	return sel, nil
}

// attach defines the view of one table, unless the view already reads the
// same table state and range.
func (s *Session) attach(ctx context.Context, id lake.TableID, r *lake.Reader, within *lake.DateRange) error {
	key := r.Version()
	if within != nil {
		key += fmt.Sprintf(" %s..%s", within.From, within.To)
	}
	if s.ready[id] == key {
		return nil
	}
	from, err := r.Scan(ctx, s.conn, s.stage, within)
	if err != nil {
		return err
	}
	view := duck.Ident(s.catalog) + "." + duck.Ident(id.Namespace) + "." + duck.Ident(id.Name)
	if _, err := s.conn.ExecContext(ctx, "CREATE OR REPLACE VIEW "+view+" AS SELECT * FROM "+from); err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	s.ready[id] = key
	return nil
}

// Check attaches the tables stmt names and refuses it (ErrBlocked) unless
// it is one read-only statement.
func (s *Session) Check(ctx context.Context, stmt string) error {
	sel, err := s.Prepare(ctx, stmt)
	if err != nil || sel != nil {
		return err // one SELECT: read-only, and checked without binding it twice
	}
	return checkReadOnly(ctx, s.conn, stmt, s.copies)
}

// Query checks stmt and runs it with args for its $n parameters.
func (s *Session) Query(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	if err := s.Check(ctx, stmt); err != nil {
		return nil, err
	}
	rows, err := s.conn.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, explain(err)
	}
	return rows, nil
}

// Export checks stmt and writes its rows to a Parquet file, which a
// locked database must list in its Sandbox.WritePaths.
func (s *Session) Export(ctx context.Context, stmt, path string) error {
	if err := s.Check(ctx, stmt); err != nil {
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	_, err = s.conn.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd)", stmt, duck.Literal(abs)))
	return explain(err)
}

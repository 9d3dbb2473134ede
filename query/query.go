// Package query runs SQL over the lake: every silver, gold and quarantine
// table is a DuckDB view named namespace.table (gold.orders_daily), whose
// rows are the table's live data files as planned by the Iceberg catalog,
// optionally as of an earlier snapshot. Medallion writes no delete files, so
// reading the planned files is exact.
package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/apache/iceberg-go/catalog"

	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/lake"
)

// Session is one DuckDB connection with the lake's tables attached.
type Session struct {
	conn  *sql.Conn
	lake  *lake.Lake
	at    lake.Snapshot
	stage string
	ready map[string]bool
}

// Open starts a session reading the tables as of at (zero: current).
func Open(ctx context.Context, l *lake.Lake, db *duck.DB, at lake.Snapshot) (*Session, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	stage, err := db.StageDir("query-")
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &Session{conn: conn, lake: l, at: at, stage: stage, ready: map[string]bool{}}
	for _, ns := range lake.Namespaces {
		if _, err := conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+duck.Ident(ns)); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close releases the connection and staged files.
func (s *Session) Close() error {
	os.RemoveAll(s.stage)
	return s.conn.Close()
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

// Prepare attaches every table the statement names, and only those: on S3
// their files are downloaded first.
func (s *Session) Prepare(ctx context.Context, stmt string) error {
	for _, id := range TablesIn(stmt) {
		if err := s.Attach(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// Attach defines the view for one table.
func (s *Session) Attach(ctx context.Context, id lake.TableID) error {
	if s.ready[id.String()] {
		return nil
	}
	from, err := s.lake.Scan(ctx, s.conn, id, s.at, s.stage)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		return fmt.Errorf("table %s does not exist (run `medallion tables` to list them)", id)
	}
	if err != nil {
		return err
	}
	view := duck.Ident(id.Namespace) + "." + duck.Ident(id.Name)
	if _, err := s.conn.ExecContext(ctx, "CREATE OR REPLACE VIEW "+view+" AS SELECT * FROM "+from); err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	s.ready[id.String()] = true
	return nil
}

// Query attaches the tables stmt names and runs it.
func (s *Session) Query(ctx context.Context, stmt string) (*sql.Rows, error) {
	if err := s.Prepare(ctx, stmt); err != nil {
		return nil, err
	}
	return s.conn.QueryContext(ctx, stmt)
}

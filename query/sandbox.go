package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/medallionlake/medallion/duck"
)

// ErrBlocked marks a statement the sandbox refused.
var ErrBlocked = errors.New("blocked")

// Sandbox says what a locked database may touch besides the lake's tables.
type Sandbox struct {
	// AllowDir is one folder statements may read and write (query
	// --allow-files); empty for none.
	AllowDir string
	// WritePaths are files Medallion itself writes through DuckDB (query
	// --format parquet --out FILE).
	WritePaths []string
}

// Lock closes db to everything but the lake tables its sessions stage
// (and the sandbox's folder): no file access, no extension, no setting
// changed. Sessions opened on it run only read-only statements. It cannot
// be undone, so a locked database serves queries and nothing else.
func Lock(ctx context.Context, db *duck.DB, sb Sandbox) error {
	root, err := db.TablesDir()
	if err != nil {
		return err
	}
	dirs := []string{root + string(filepath.Separator)}
	if sb.AllowDir != "" {
		abs, err := filepath.Abs(sb.AllowDir)
		if err != nil {
			return err
		}
		if st, err := os.Stat(abs); err != nil || !st.IsDir() {
			return fmt.Errorf("--allow-files %s: not a folder", sb.AllowDir)
		}
		dirs = append(dirs, abs+string(filepath.Separator))
	}
	var paths []string
	for _, p := range sb.WritePaths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		paths = append(paths, abs)
	}
	return db.Lock(ctx, dirs, paths)
}

// readOnly are the statement types a session runs: DESCRIBE, SHOW,
// SUMMARIZE, PIVOT, VALUES and FROM-first queries are SELECTs to DuckDB.
var readOnly = map[duckdb.StmtType]bool{duckdb.STATEMENT_TYPE_SELECT: true, duckdb.STATEMENT_TYPE_EXPLAIN: true}

// checkReadOnly refuses anything but one read-only statement, before it
// runs: DuckDB's own locks already stop file access and setting changes,
// and this also keeps statements from creating or changing objects.
func checkReadOnly(ctx context.Context, conn *sql.Conn, stmt string, copies bool) error {
	return withPrepared(conn, stmt, copies, func(*duckdb.Stmt) error { return nil })
}

// withPrepared prepares stmt, refuses it unless it is one read-only
// statement (or a COPY, when copies), and hands it to fn.
func withPrepared(conn *sql.Conn, stmt string, copies bool, fn func(*duckdb.Stmt) error) error {
	return conn.Raw(func(c any) error {
		dc, ok := c.(*duckdb.Conn)
		if !ok {
			return fmt.Errorf("query: unexpected driver connection %T", c)
		}
		// Prepare (unlike PrepareContext, which runs all statements but the
		// last) refuses several statements without running any.
		raw, err := dc.Prepare(stmt)
		if err != nil {
			if strings.Contains(err.Error(), "multi-statement") {
				return fmt.Errorf("%w: one statement at a time", ErrBlocked)
			}
			return explain(err)
		}
		defer raw.Close()
		st := raw.(*duckdb.Stmt)
		typ, err := st.StatementType()
		if err != nil {
			return err
		}
		if !readOnly[typ] && !(copies && typ == duckdb.STATEMENT_TYPE_COPY) {
			return fmt.Errorf("%w: queries are read-only, so only SELECT and EXPLAIN run (this is a %s statement)", ErrBlocked, typeName(typ))
		}
		return fn(st)
	})
}

// explain turns DuckDB's refusal of a file or setting into ErrBlocked with
// the reason.
func explain(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Permission Error"):
		return fmt.Errorf("%w: queries read only the lake's tables and have no file access (only medallion query --allow-files DIR opens a folder): %v", ErrBlocked, err)
	case strings.Contains(msg, "configuration has been locked"):
		return fmt.Errorf("%w: settings cannot be changed: %v", ErrBlocked, err)
	}
	return err
}

var typeNames = map[duckdb.StmtType]string{
	duckdb.STATEMENT_TYPE_INSERT: "INSERT", duckdb.STATEMENT_TYPE_UPDATE: "UPDATE", duckdb.STATEMENT_TYPE_DELETE: "DELETE",
	duckdb.STATEMENT_TYPE_PREPARE: "PREPARE", duckdb.STATEMENT_TYPE_CREATE: "CREATE", duckdb.STATEMENT_TYPE_EXECUTE: "EXECUTE",
	duckdb.STATEMENT_TYPE_ALTER: "ALTER", duckdb.STATEMENT_TYPE_TRANSACTION: "transaction", duckdb.STATEMENT_TYPE_COPY: "COPY",
	duckdb.STATEMENT_TYPE_ANALYZE: "ANALYZE", duckdb.STATEMENT_TYPE_VARIABLE_SET: "SET", duckdb.STATEMENT_TYPE_CREATE_FUNC: "CREATE FUNCTION",
	duckdb.STATEMENT_TYPE_DROP: "DROP", duckdb.STATEMENT_TYPE_EXPORT: "EXPORT", duckdb.STATEMENT_TYPE_PRAGMA: "PRAGMA",
	duckdb.STATEMENT_TYPE_VACUUM: "VACUUM", duckdb.STATEMENT_TYPE_CALL: "CALL", duckdb.STATEMENT_TYPE_SET: "SET",
	duckdb.STATEMENT_TYPE_LOAD: "LOAD", duckdb.STATEMENT_TYPE_ATTACH: "ATTACH", duckdb.STATEMENT_TYPE_DETACH: "DETACH",
}

func typeName(t duckdb.StmtType) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d", t)
}

// Description is what a statement returns and takes, known before it runs.
type Description struct {
	Columns []Column
	Params  []duckdb.Type // the type DuckDB infers for each $n
}

// Column is one result column.
type Column struct {
	Name string
	Type duckdb.Type
	// Elem is a list's element type (TYPE_INVALID for other columns).
	Elem duckdb.Type
	// JSON: a VARCHAR column of DuckDB's JSON type.
	JSON bool
}

// Describe attaches the tables stmt names, refuses it (ErrBlocked) unless
// it is one read-only statement, and describes its result and parameters
// (for the extended query protocol's Describe).
func (s *Session) Describe(ctx context.Context, stmt string) (Description, error) {
	if _, err := s.Prepare(ctx, stmt); err != nil {
		return Description{}, err
	}
	var d Description
	if err := withPrepared(s.conn, stmt, false, func(st *duckdb.Stmt) error { return describe(st, &d) }); err != nil {
		return d, err
	}
	s.markJSON(ctx, stmt, &d)
	return d, nil
}

// markJSON finds the text columns of DuckDB's JSON type, which a prepared
// statement does not tell apart from VARCHAR: it runs the statement with
// no row (LIMIT 0, parameters NULL) and reads the result's type names. A
// statement that cannot be wrapped so keeps its columns as text.
func (s *Session) markJSON(ctx context.Context, stmt string, d *Description) {
	// Only a statement that names JSON (a cast or a json function) can
	// return it: no lake table has a JSON column. That keeps the second
	// planning off every other statement.
	if !strings.Contains(strings.ToLower(stmt), "json") ||
		!slices.ContainsFunc(d.Columns, func(c Column) bool { return c.Type == duckdb.TYPE_VARCHAR }) {
		return
	}
	rows, err := s.conn.QueryContext(ctx, "SELECT * FROM ("+stmt+"\n) LIMIT 0", make([]any, len(d.Params))...)
	if err != nil {
		return
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil || len(types) != len(d.Columns) {
		return
	}
	for i, t := range types {
		d.Columns[i].JSON = t.DatabaseTypeName() == "JSON"
	}
}

func describe(st *duckdb.Stmt, d *Description) error {
	n, err := st.ColumnCount()
	if err != nil {
		return err
	}
	for i := range n {
		name, err := st.ColumnName(i)
		if err != nil {
			return err
		}
		info, err := st.ColumnTypeInfo(i)
		if err != nil {
			return err
		}
		c := Column{Name: name, Type: info.InternalType(), Elem: duckdb.TYPE_INVALID}
		if l, ok := info.Details().(*duckdb.ListDetails); ok {
			c.Elem = l.Child.InternalType()
		}
		d.Columns = append(d.Columns, c)
	}
	for i := 1; i <= st.NumInput(); i++ {
		typ, err := st.ParamType(i)
		if err != nil {
			return err
		}
		d.Params = append(d.Params, typ)
	}
	return nil
}

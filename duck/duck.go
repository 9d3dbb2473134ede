// Package duck opens the embedded DuckDB that silver, gold and query run in,
// with the configured memory limit, threads and spill folder.
package duck

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/medallionlake/medallion/config"
)

// DB is one in-memory DuckDB instance. Each job takes its own connection
// (Conn), so TEMP tables are private to the job while memory_limit applies to
// the whole process.
type DB struct {
	*sql.DB
	connector *duckdb.Connector
	spillDir  string
	ownSpill  bool
	// locked: Lock has run, so the settings below are in place for the
	// whole database and new connections must not set them again.
	locked atomic.Bool

	tablesOnce sync.Once
	tablesDir  string
	tablesErr  error
}

// Open starts DuckDB. An empty SpillDir uses a private folder under the
// system temp folder, removed by Close.
func Open(cfg config.DuckDB) (*DB, error) {
	spill, own := cfg.SpillDir, false
	if spill == "" {
		dir, err := os.MkdirTemp("", "medallion-duckdb-spill-")
		if err != nil {
			return nil, err
		}
		spill, own = dir, true
	} else if err := os.MkdirAll(spill, 0o755); err != nil {
		return nil, fmt.Errorf("duckdb.spill_dir %s: %w", spill, err)
	}
	settings := []string{
		"SET temp_directory = " + Literal(spill),
		// Timestamps are UTC throughout: parsing RFC 3339 with an offset,
		// truncating to hours and casting to dates must not depend on the
		// machine's zone.
		"SET TimeZone = 'UTC'",
		// Insertion order is never relied on (every output is keyed), and
		// dropping it lets DuckDB stream and spill more freely.
		"SET preserve_insertion_order = false",
	}
	if cfg.MemoryLimit != "" {
		settings = append(settings, "SET memory_limit = "+Literal(cfg.MemoryLimit))
	}
	if cfg.Threads > 0 {
		settings = append(settings, fmt.Sprintf("SET threads = %d", cfg.Threads))
	}
	db := &DB{spillDir: spill, ownSpill: own}
	connector, err := duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		if db.locked.Load() {
			return nil
		}
		for _, s := range settings {
			if _, err := execer.ExecContext(context.Background(), s, nil); err != nil {
				return fmt.Errorf("duckdb %s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	db.DB, db.connector = sql.OpenDB(connector), connector
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	return db, nil
}

// Close closes DuckDB and removes a private spill folder.
func (db *DB) Close() error {
	err := db.DB.Close()
	if cerr := db.connector.Close(); err == nil {
		err = cerr
	}
	if db.ownSpill {
		os.RemoveAll(db.spillDir)
	} else if db.tablesDir != "" {
		os.RemoveAll(db.tablesDir)
	}
	return err
}

// Lock takes file access away from the database for good: statements may
// read and write only inside dirs (and the files in paths), install and load
// no extension, and change no setting. The settings Open made stay.
func (db *DB) Lock(ctx context.Context, dirs, paths []string) error {
	db.locked.Store(true)
	settings := []string{"SET allowed_directories = " + List(dirs)}
	if len(paths) > 0 {
		settings = append(settings, "SET allowed_paths = "+List(paths))
	}
	settings = append(settings,
		"SET enable_external_access = false",
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET lock_configuration = true")
	for _, s := range settings {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("duckdb %s: %w", s, err)
		}
	}
	return nil
}

// TablesDir is a folder of this database's own under the spill folder,
// made on first use and removed by Close. Query sessions stage table files
// there, all in the one folder, so that DuckDB's caches keyed by path serve
// every session of a long-running process.
func (db *DB) TablesDir() (string, error) {
	db.tablesOnce.Do(func() { db.tablesDir, db.tablesErr = os.MkdirTemp(db.spillDir, "tables-") })
	return db.tablesDir, db.tablesErr
}

// SpillDir is where DuckDB spills.
func (db *DB) SpillDir() string { return db.spillDir }

// Ident quotes an identifier.
func Ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Literal quotes a string literal.
func Literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// List renders a list of string literals: ['a', 'b'].
func List(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = Literal(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// StageDir makes a fresh folder for a job's temporary files under the spill
// folder; the caller removes it.
func (db *DB) StageDir(prefix string) (string, error) {
	return os.MkdirTemp(db.spillDir, prefix)
}

// Column is one column of a DuckDB relation.
type Column struct {
	Name string
	Type string // DuckDB type, e.g. DECIMAL(12,2)
}

// Missing returns the names in want that no column has.
func Missing(cols []Column, want ...string) []string {
	var out []string
	for _, w := range want {
		if !slices.ContainsFunc(cols, func(c Column) bool { return c.Name == w }) {
			out = append(out, w)
		}
	}
	return out
}

// Describe lists the columns of a table or view.
func Describe(ctx context.Context, conn *sql.Conn, relation string) ([]Column, error) {
	return describe(ctx, conn, relation, relation)
}

// DescribeQuery lists the columns a SELECT would output, without running it.
func DescribeQuery(ctx context.Context, conn *sql.Conn, query string) ([]Column, error) {
	return describe(ctx, conn, query+"\n", "query")
}

func describe(ctx context.Context, conn *sql.Conn, what, name string) ([]Column, error) {
	rows, err := conn.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE "+what+")")
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", name, err)
	}
	defer rows.Close()
	var out []Column
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Name, &c.Type); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Count returns the row count of a relation.
func Count(ctx context.Context, conn *sql.Conn, relation string) (int64, error) {
	var n int64
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+relation).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", relation, err)
	}
	return n, nil
}

// ReadParquet renders a read_parquet call over local files; with filename
// the rows carry the column filename (the file's absolute path).
func ReadParquet(paths []string, filename bool) string {
	abs := make([]string, len(paths))
	for i, p := range paths {
		abs[i], _ = filepath.Abs(p)
	}
	return fmt.Sprintf("read_parquet(%s, filename = %t)", List(abs), filename)
}

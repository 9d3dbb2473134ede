package meta

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

//go:embed migrations/sqlite/*.up.sql
var sqliteMigrations embed.FS

// sqliteTime is fixed-width UTC text, so comparing the text compares times.
const sqliteTime = "2006-01-02T15:04:05.000000Z"

// OpenSQLite opens (creating if needed) the SQLite store at path and applies
// migrations. It uses WAL so readers never block the writer, and IMMEDIATE
// transactions so two writers serialise instead of failing with a deadlock.
// The overlap lock is a flock on <path>.<name>.lock, which the kernel
// releases if the process dies.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" {
		return nil, errors.New("meta: sqlite path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("meta: create folder for %s: %w", path, err)
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(30000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("meta: open %s: %w", path, err)
	}
	migrations, _ := fs.Sub(sqliteMigrations, "migrations/sqlite")
	s := &sqlStore{db: db, d: dialect{
		name:       "sqlite",
		rebind:     func(q string) string { return q },
		timeArg:    func(t time.Time) any { return t.UTC().Format(sqliteTime) },
		migrations: migrations,
		byState:    "+domain",
		stmts:      loadStatements("sqlite", func(q string) string { return q }),
		listArg: func(values []string) any {
			if values == nil {
				values = []string{}
			}
			js, _ := json.Marshal(values)
			return string(js)
		},
		tryLock: func(ctx context.Context, name string) (func() error, error) {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("meta: lock %s: %w", name, err)
			}
			return flockFile(path + "." + name + ".lock")
		},
	}}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("meta: open %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func flockFile(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("meta: lock file %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("meta: %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("meta: lock %s: %w", path, err)
	}
	// Record the holder for the person reading the lock file.
	host, _ := os.Hostname()
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))), 0)
	return func() error {
		defer f.Close()
		return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}, nil
}

// Open opens the store named by a meta.url: sqlite://path or postgres://….
func Open(ctx context.Context, rawURL string) (Store, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		path, _, _ := strings.Cut(strings.TrimPrefix(rawURL, "sqlite://"), "?")
		return OpenSQLite(ctx, path)
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return OpenPostgres(ctx, rawURL)
	default:
		return nil, fmt.Errorf("meta: unsupported meta.url %q (want sqlite:// or postgres://)", rawURL)
	}
}

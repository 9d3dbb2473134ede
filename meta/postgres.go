package meta

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

//go:embed migrations/postgres/*.up.sql
var postgresMigrations embed.FS

// OpenPostgres connects to PostgreSQL and applies migrations. A search_path
// in the URL selects (and creates) the schema, so several deployments or
// tests can share one database. Claims use FOR UPDATE SKIP LOCKED so workers
// on many hosts never take the same partition; the overlap lock is a
// session advisory lock, released by the server if the process dies.
func OpenPostgres(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("meta: postgres URL: %w", err)
	}
	db, err := sql.Open("pgx", rawURL)
	if err != nil {
		return nil, fmt.Errorf("meta: open %s: %w", u.Redacted(), err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("meta: connect %s: %w", u.Redacted(), err)
	}
	if schema := u.Query().Get("search_path"); schema != "" {
		first := strings.TrimSpace(strings.Split(schema, ",")[0])
		if _, err := db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{first}.Sanitize()); err != nil {
			db.Close()
			return nil, fmt.Errorf("meta: create schema %s: %w", first, err)
		}
	}
	var schema string
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("meta: current schema: %w", err)
	}
	migrations, _ := fs.Sub(postgresMigrations, "migrations/postgres")
	// One channel per schema, like the locks: deployments sharing a
	// database do not wake each other's workers.
	s := &sqlStore{db: db, work: &listener{db: db, channel: fmt.Sprintf("medallion_work_%x", uint64(lockKey(schema, "work")))}}
	s.d = dialect{
		name:       "postgres",
		rebind:     rebindDollar,
		timeArg:    func(t time.Time) any { return t.UTC() },
		lockRows:   " FOR UPDATE",
		skipLocked: " FOR UPDATE SKIP LOCKED",
		stmts:      loadStatements("postgres", dollarParams),
		listArg: func(values []string) any {
			if values == nil {
				values = []string{}
			}
			return values
		},
		migrations: migrations,
		beginMigrate: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(schema, "migrate"))
			return err
		},
		tryLock: func(ctx context.Context, name string) (func() error, error) {
			return advisoryLock(ctx, db, lockKey(schema, name), name)
		},
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// lockKey derives a 64-bit advisory lock key from the schema and lock name,
// so deployments in different schemas of one database do not block each
// other.
func lockKey(schema, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("medallion:" + schema + ":" + name))
	return int64(h.Sum64())
}

// advisoryLock holds a dedicated connection for as long as the lock is held:
// session advisory locks belong to the connection that took them.
func advisoryLock(ctx context.Context, db *sql.DB, key int64, name string) (func() error, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("meta: lock %s: %w", name, err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
		conn.Close()
		return nil, fmt.Errorf("meta: lock %s: %w", name, err)
	}
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("meta: advisory lock %q: %w", name, ErrLocked)
	}
	return func() error {
		defer conn.Close()
		_, err := conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", key)
		return err
	}, nil
}

// rebindDollar turns ? placeholders into $1, $2, …. The queries it is given
// never contain a literal question mark.
func rebindDollar(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

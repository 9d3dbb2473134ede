package cli_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/medallionlake/medallion/cli"
	"github.com/medallionlake/medallion/internal/testenv"
)

// TestExtractCommand: medallion extract reads a PostgreSQL users table into
// bronze, status shows the extract's position, and run takes the users
// domain from there to gold; a broken extract fails alone and keeps its
// position, as does one whose key column changed type, until --reset.
func TestExtractCommand(t *testing.T) {
	url, pg := sourceDB(t, nil,
		`CREATE TABLE app_users (user_id text PRIMARY KEY, email text NOT NULL, name text, city text, signup_ts timestamptz,
			updated_at timestamptz NOT NULL DEFAULT now(), is_test_account boolean NOT NULL DEFAULT false, year_of_birth int)`,
		`INSERT INTO app_users (user_id, email, name, city, signup_ts, updated_at, year_of_birth)
			SELECT 'u-' || i, 'User' || i || '@Example.com', 'User ' || i, (ARRAY['Austin', 'Boston'])[1 + i % 2],
				timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour', timestamptz '2024-01-15 06:00:00+00' + i * interval '1 minute', 1990
			FROM generate_series(1, 300) i`,
		`CREATE TABLE app_restaurants (restaurant_id text PRIMARY KEY, name text, city text, cuisine text, rating numeric(2,1), is_active boolean)`,
		`INSERT INTO app_restaurants SELECT 'r-' || i, 'R' || i, 'Austin', 'mexican', 4.5, true FROM generate_series(1, 7) i`,
	)
	sources := "sources:\n  app:\n    url: " + url + "\n    extracts:\n" +
		"      users: {mode: incremental, table: app_users, watermark: updated_at, key: [user_id], mask: {name: sha256}}\n" +
		"      broken: {domain: users, mode: incremental, table: app_users, watermark: modified_at, key: [user_id]}\n" +
		"      restaurants: {mode: snapshot, query: \"SELECT r.*, '[]'::json AS menu_items FROM app_restaurants r\"}\n"
	sources += "  down:\n    url: postgres://postgres@" + testenv.FreeAddr(t) + "/app\n    extracts:\n" +
		"      users: {mode: incremental, table: app_users, watermark: updated_at, key: [user_id]}\n"
	// A Pushgateway that is down is reported and fails nothing.
	cfg := projectWith(t, sources+"metrics:\n  pushgateway_url: http://"+testenv.FreeAddr(t)+"\n")

	r := run(t, "extract", "--config", cfg)
	if !strings.Contains(r.stdout, "down.users: FAILED: source down: ") {
		t.Fatalf("an unreachable source: exit %d\n%s", r.code, r.stdout)
	}
	if r.code != cli.ExitFailed || !strings.Contains(r.stdout, "app.users: 300 rows in 1 batches into users bronze") ||
		!strings.Contains(r.stdout, "app.restaurants: 7 rows in 1 batches into restaurants bronze") ||
		!strings.Contains(r.stdout, `app.broken: FAILED: extract app.broken: incremental extract of app_users: no column "modified_at"`) {
		t.Fatalf("extract: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "extract", "--config", cfg, "--source", "app", "--extract", "users")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "app.users: 0 rows") || !strings.Contains(r.stdout, "WARNING: could not push metrics: push the extracts' metrics to http://") {
		t.Fatalf("extract with nothing new: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "status", "--config", cfg)
	if !strings.Contains(squash(r.stdout), "app users incremental 300 2024-01-15 11:00:00+00") ||
		!strings.Contains(r.stdout, `no column "modified_at"`) {
		t.Fatalf("status:\n%s", r.stdout)
	}
	r = run(t, "run", "--config", cfg, "--domain", "users", "--domain", "restaurants")
	if r.code != cli.ExitOK {
		t.Fatalf("run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "query", "--config", cfg, "--format", "csv", "SELECT count(*) AS n, count(DISTINCT city) AS cities FROM gold.users_current")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "300,2") {
		t.Fatalf("gold after extract and run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "query", "--config", cfg, "--format", "csv", "SELECT count(*) AS n FROM gold.restaurants_current")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "\n7") {
		t.Fatalf("gold after a snapshot extract and run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// A column that orders the extract changes type: the extract fails,
	// names it and keeps its position until --reset.
	if _, err := pg.Exec(context.Background(), "ALTER TABLE app_users ALTER COLUMN user_id TYPE varchar(20)"); err != nil {
		t.Fatal(err)
	}
	r = run(t, "extract", "--config", cfg, "--source", "app", "--extract", "users")
	if r.code != cli.ExitFailed || !strings.Contains(r.stdout, `column "user_id" is now character varying, but was text when the position was taken`) {
		t.Fatalf("a changed column type: exit %d\n%s", r.code, r.stdout)
	}
	if r = run(t, "status", "--config", cfg); !strings.Contains(squash(r.stdout), "app users incremental 300 2024-01-15 11:00:00+00") {
		t.Fatalf("the position moved after a changed column type:\n%s", r.stdout)
	}
	r = run(t, "extract", "--config", cfg, "--source", "app", "--extract", "users", "--reset")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "app.users: position forgotten") {
		t.Fatalf("--reset: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "extract", "--config", cfg, "--source", "app", "--extract", "users")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "app.users: 300 rows") {
		t.Fatalf("after --reset: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "extract", "--config", cfg, "--source", "nope")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, `unknown source "nope" (configured: app, down)`) {
		t.Fatalf("an unknown source: exit %d\n%s", r.code, r.stderr)
	}
}

// TestExtractToKafkaEqualsBronze: extract --to kafka, then sink --until-end
// and run, gives the same gold as extract into bronze and run.
func TestExtractToKafkaEqualsBronze(t *testing.T) {
	url, _ := sourceDB(t, nil,
		`CREATE TABLE app_users (user_id text PRIMARY KEY, email text NOT NULL, name text, city text, signup_ts timestamptz,
			updated_at timestamptz NOT NULL, is_test_account boolean NOT NULL DEFAULT false, year_of_birth int)`,
		`INSERT INTO app_users SELECT 'u-' || i, 'User' || i || '@Example.com', 'User ' || i, (ARRAY['Austin', 'Boston', 'Chicago'])[1 + i % 3],
			timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour', timestamptz '2024-01-15 06:00:00+00' + i * interval '7 minutes', i % 50 = 0, 1980 + i % 20
			FROM generate_series(1, 500) i`,
	)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "raw-events", "raw-orders", "raw-restaurants", "raw-users"), kfake.AllowAutoTopicCreation(),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sources := "sources:\n  app:\n    url: " + url + "\n    extracts:\n" +
		"      users: {mode: incremental, table: app_users, watermark: updated_at, key: [user_id]}\n"
	viaKafka := projectWith(t, sources+"kafka:\n  brokers: ["+c.ListenAddrs()[0]+"]\n  group_id: extract\nsink:\n  http_addr: \"\"\n")
	viaBronze := projectWith(t, sources)
	for _, s := range [][]string{
		{"extract", "--config", viaKafka, "--to", "kafka"},
		{"sink", "--config", viaKafka, "--until-end"},
		{"run", "--config", viaKafka, "--domain", "users"},
		{"extract", "--config", viaBronze},
		{"run", "--config", viaBronze, "--domain", "users"},
	} {
		if r := run(t, s...); r.code != cli.ExitOK {
			t.Fatalf("%v: exit %d\n%s\n%s", s, r.code, r.stdout, r.stderr)
		}
	}
	for _, table := range []string{"gold.users_current", "gold.signups_daily"} {
		q := "SELECT * FROM " + table + " ORDER BY ALL"
		a := run(t, "query", "--config", viaKafka, "--format", "csv", q)
		b := run(t, "query", "--config", viaBronze, "--format", "csv", q)
		if a.code != cli.ExitOK || b.code != cli.ExitOK || a.stdout != b.stdout || strings.Count(a.stdout, "\n") < 3 {
			t.Fatalf("%s differs (exits %d %d):\nvia kafka:\n%.600s\nvia bronze:\n%.600s", table, a.code, b.code, a.stdout, b.stdout)
		}
	}
}

// projectWith is project on SQLite with more configuration.
func projectWith(t *testing.T, extra string) string {
	t.Helper()
	cfg := project(t, "sqlite://./medallion.db")
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(raw, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// sourceDB starts a PostgreSQL cluster of the test's own with settings,
// runs stmts on it and returns its URL and a connection.
func sourceDB(t *testing.T, settings map[string]string, stmts ...string) (string, *pgx.Conn) {
	t.Helper()
	url := testenv.StartPostgresCluster(t, settings)
	ctx := context.Background()
	pg, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close(context.Background()) })
	for _, q := range stmts {
		if _, err := pg.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return url, pg
}

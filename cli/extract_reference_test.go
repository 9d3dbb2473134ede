package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/medallionlake/medallion/cli"
)

// TestReferenceSourcesEqualKafkaPath: generate --to postgres, the built-in
// extracts and run give the gold of generate --to kafka, sink and run with
// the same seed, in each mode that applies: orders by cdc (with items) and
// by incremental, restaurants by snapshot, users by incremental with the
// email masked at the source.
func TestReferenceSourcesEqualKafkaPath(t *testing.T) {
	url, pg := sourceDB(t, map[string]string{"wal_level": "logical", "max_replication_slots": "4", "max_wal_senders": "4"})
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "raw-orders", "raw-restaurants", "raw-users"),
		kfake.AllowAutoTopicCreation(), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const domains = "domains: [orders, restaurants, users]\n"
	gen := []string{"--start", "2024-01-15", "--days", "2", "--events-per-day", "600", "--seed", "11",
		"--domain", "orders", "--domain", "restaurants", "--domain", "users",
		"--duplicates", "0.02", "--malformed", "0.005", "--unroutable", "0.005", "--late", "0.01"}
	viaKafka := projectWith(t, domains+"kafka:\n  brokers: ["+c.ListenAddrs()[0]+"]\n  group_id: reference\nsink:\n  http_addr: \"\"\n")
	source := "sources:\n  app:\n    url: " + url + "\n    extracts:\n"
	viaCDC := projectWith(t, domains+source+"      orders: {mode: cdc}\n      restaurants: {mode: snapshot}\n      users: {mode: incremental}\n")
	polled := projectWith(t, domains+source+"      orders: {mode: incremental}\n")

	steps := [][]string{
		append([]string{"generate", "--config", viaKafka, "--to", "kafka"}, gen...),
		{"sink", "--config", viaKafka, "--until-end"},
		{"run", "--config", viaKafka, "--workers", "1"},
		{"generate", "--config", viaCDC, "--to", "postgres", "--tables-only"},
		{"extract", "--config", viaCDC, "--extract", "orders"}, // the slot, before the rows
		append([]string{"generate", "--config", viaCDC, "--to", "postgres", "--deletes", "0"}, gen...),
		{"extract", "--config", viaCDC},
		{"run", "--config", viaCDC, "--workers", "1"},
		{"extract", "--config", polled},
		{"run", "--config", polled, "--workers", "1"},
	}
	for _, s := range steps {
		r := run(t, s...)
		if r.code != cli.ExitOK {
			t.Fatalf("%v: exit %d\n%s\n%s", s, r.code, r.stdout, r.stderr)
		}
		if s[0] == "extract" && len(s) == 3 && !strings.Contains(r.stdout, "app.orders: ") {
			t.Fatalf("%v:\n%s", s, r.stdout)
		}
	}
	same := func(table, query string, projects ...string) {
		t.Helper()
		want := run(t, "query", "--config", viaKafka, "--format", "csv", query)
		if want.code != cli.ExitOK || strings.Count(want.stdout, "\n") < 4 {
			t.Fatalf("%s via kafka: exit %d\n%s%s", table, want.code, want.stdout, want.stderr)
		}
		for _, p := range projects {
			got := run(t, "query", "--config", p, "--format", "csv", query)
			if got.stdout != want.stdout {
				t.Errorf("%s differs from the Kafka path (exit %d):\nkafka:\n%s\nextracted:\n%s\n%s", table, got.code, head2(want.stdout), head2(got.stdout), got.stderr)
			}
		}
	}
	same("gold.orders_daily", "SELECT * FROM gold.orders_daily ORDER BY ALL", viaCDC, polled)
	same("gold.users_current", "SELECT * FROM gold.users_current ORDER BY ALL", viaCDC)
	same("gold.signups_daily", "SELECT * FROM gold.signups_daily ORDER BY ALL", viaCDC)
	// A snapshot is stamped with the time of the extract, not the time of
	// the hourly snapshot the generator made last.
	same("gold.restaurants_current", "SELECT * EXCLUDE (snapshot_ts, snapshot_date) FROM gold.restaurants_current ORDER BY ALL", viaCDC)

	// A row that fails its domain's contract reaches quarantine, as it does
	// from Kafka: a user whose email has no domain, and an order deleted in
	// the database (the orders contract has no delete).
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO users (user_id, email, signup_ts, updated_at) VALUES ('u-bad', 'nobody', '2024-01-10 00:00:00+00', now())`,
		`DELETE FROM orders WHERE order_id = (SELECT min(order_id) FROM orders)`,
	} {
		if _, err := pg.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range [][]string{{"extract", "--config", viaCDC}, {"run", "--config", viaCDC}} {
		if r := run(t, s...); r.code != cli.ExitOK {
			t.Fatalf("%v: exit %d\n%s\n%s", s, r.code, r.stdout, r.stderr)
		}
	}
	r := run(t, "query", "--config", viaCDC, "--format", "csv",
		"SELECT reason FROM quarantine.users WHERE payload LIKE '%u-bad%' UNION ALL SELECT reason FROM quarantine.orders WHERE payload LIKE '%\"op\":\"d\"%'")
	if r.code != cli.ExitOK || r.stdout != "reason\nemail_domain is empty\nmissing user_id\n" {
		t.Fatalf("quarantine: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

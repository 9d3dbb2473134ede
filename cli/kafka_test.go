package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/medallionlake/medallion/cli"
)

// TestKafkaPathEqualsBronzePath: generate --to kafka, sink --until-end, run
// gives the same gold tables as generate --to bronze, run, with the same
// seed.
func TestKafkaPathEqualsBronzePath(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "raw-events", "raw-orders", "raw-restaurants", "raw-users"),
		kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	project := func(extra string) string {
		dir := t.TempDir()
		cfg := "storage:\n  url: ./lakehouse\nmeta:\n  url: sqlite://./medallion.db\n" + extra
		p := filepath.Join(dir, "medallion.yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gen := []string{"--start", "2024-01-15", "--days", "2", "--events-per-day", "500", "--seed", "5",
		"--duplicates", "0.02", "--malformed", "0.005", "--unroutable", "0.005", "--late", "0"}
	viaKafka := project("kafka:\n  brokers: [" + c.ListenAddrs()[0] + "]\n  group_id: e2e\nsink:\n  http_addr: \"\"\n")
	viaBronze := project("")

	steps := [][]string{
		append([]string{"generate", "--config", viaKafka, "--to", "kafka"}, gen...),
		{"sink", "--config", viaKafka, "--until-end"},
		{"run", "--config", viaKafka},
		append([]string{"generate", "--config", viaBronze, "--to", "bronze"}, gen...),
		{"run", "--config", viaBronze},
	}
	for _, s := range steps {
		if r := run(t, s...); r.code != cli.ExitOK {
			t.Fatalf("%v: exit %d\n%s\n%s", s, r.code, r.stdout, r.stderr)
		}
	}
	for _, table := range []string{"gold.events_hourly", "gold.funnel_daily", "gold.revenue_daily", "gold.orders_daily",
		"gold.restaurants_current", "gold.users_current", "gold.signups_daily"} {
		q := "SELECT * FROM " + table + " ORDER BY ALL"
		a := run(t, "query", "--config", viaKafka, "--format", "csv", q)
		b := run(t, "query", "--config", viaBronze, "--format", "csv", q)
		if a.code != cli.ExitOK || b.code != cli.ExitOK {
			t.Fatalf("%s: exits %d %d: %s %s", table, a.code, b.code, a.stderr, b.stderr)
		}
		if a.stdout != b.stdout || strings.Count(a.stdout, "\n") < 2 {
			t.Fatalf("%s differs between the Kafka and the bronze path:\nkafka:\n%s\nbronze:\n%s", table, head2(a.stdout), head2(b.stdout))
		}
	}
}

func head2(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 8 {
		lines = lines[:8]
	}
	return strings.Join(lines, "\n")
}

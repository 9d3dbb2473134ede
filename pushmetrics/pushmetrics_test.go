package pushmetrics_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/pushmetrics"
)

// series returns the value of the first line of text that starts with the
// metric name and contains every label.
func series(text, name string, labels ...string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if ok {
			return line[strings.LastIndex(line, " ")+1:]
		}
	}
	return ""
}

// stamp is t as the text format writes a timestamp in seconds.
func stamp(t time.Time) string { return strconv.FormatFloat(float64(t.Unix()), 'g', -1, 64) }

// TestPushToPushgateway: a run's counts reach a real Pushgateway, and a
// later run that fails a domain leaves that domain's last success time
// as it was while the healthy domain's moves on.
func TestPushToPushgateway(t *testing.T) {
	url := testenv.StartPushgateway(t)
	ctx := context.Background()
	first := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	sum := pipeline.Summary{Command: "run", Duration: 1500 * time.Millisecond, Domains: []*pipeline.DomainSummary{
		{Domain: "orders", Processed: 3, Done: 3, Rows: 4200},
		{Domain: "users", Processed: 2, Done: 2, Rows: 300},
	}}
	if err := pushmetrics.Push(ctx, url, "medallion", sum, first); err != nil {
		t.Fatal(err)
	}
	text := testenv.Get(t, url+"/metrics")
	for _, c := range []struct{ name, label, want string }{
		{"medallion_partitions_processed", `domain="orders"`, "3"},
		{"medallion_rows_processed", `domain="orders"`, "4200"},
		{"medallion_partitions_failed", `domain="users"`, "0"},
		{"medallion_run_duration_seconds", `command="run"`, "1.5"},
		{"medallion_last_success_timestamp_seconds", `domain="orders"`, stamp(first)},
		{"medallion_last_success_timestamp_seconds", `domain="users"`, stamp(first)},
	} {
		if got := series(text, c.name, c.label, `job="medallion"`); got != c.want {
			t.Errorf("after the first push %s{%s} = %q, want %q", c.name, c.label, got, c.want)
		}
	}

	second := first.Add(24 * time.Hour)
	sum.Domains[0] = &pipeline.DomainSummary{Domain: "orders", Processed: 1, Failed: 1, Unhealthy: 1}
	if err := pushmetrics.Push(ctx, url, "medallion", sum, second); err != nil {
		t.Fatal(err)
	}
	text = testenv.Get(t, url+"/metrics")
	if got := series(text, "medallion_partitions_failed", `domain="orders"`); got != "1" {
		t.Errorf("failed partitions after the second push: %q", got)
	}
	if got := series(text, "medallion_last_success_timestamp_seconds", `domain="orders"`); got != stamp(first) {
		t.Errorf("a failing domain's last success moved: %q", got)
	}
	if got := series(text, "medallion_last_success_timestamp_seconds", `domain="users"`); got != stamp(second) {
		t.Errorf("a healthy domain's last success did not move: %q", got)
	}

	if err := pushmetrics.Push(ctx, "http://"+testenv.FreeAddr(t), "medallion", sum, second); err == nil {
		t.Error("a push to nowhere succeeded")
	}
}

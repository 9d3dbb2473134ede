package cli_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medallionlake/medallion/cli"
	"github.com/medallionlake/medallion/config"
	_ "github.com/medallionlake/medallion/domains/all"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/storage/filesystem"
)

// seed writes two days of generated bronze into the project of cfgPath.
func seed(t *testing.T, cfgPath string) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := filesystem.New(filesystem.Config{Root: cfg.Storage.URL})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := generate.Generate(generate.Options{Seed: 5, Start: medtype.MustDate("2024-01-15"), Days: 2, EventsPerDay: 400, Malformed: 0.01, Duplicates: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := generate.WriteBronze(context.Background(), b, cfg.Domains, msgs, false, 500, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestRunAndBackfillCommands(t *testing.T) {
	cfg := project(t, "sqlite://./medallion.db")
	seed(t, cfg)

	r := run(t, "run", "--config", cfg, "--workers", "2")
	if r.code != cli.ExitOK {
		t.Fatalf("run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(squash(r.stdout), "TOTAL 8 8 0 0 8 8 0 0") {
		t.Fatalf("run summary:\n%s", r.stdout)
	}
	r = run(t, "run", "--config", cfg)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "Nothing to do") {
		t.Fatalf("second run: exit %d\n%s", r.code, r.stdout)
	}
	r = run(t, "status", "--config", cfg, "--domain", "events", "--date", "2024-01-15")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "snapshot gold.funnel_daily") || !strings.Contains(squash(r.stdout), "status DONE") {
		t.Fatalf("status of a processed partition:\n%s", r.stdout)
	}

	r = run(t, "backfill", "--config", cfg, "--domain", "orders", "--from", "2024-01-15", "--to", "2024-01-17", "--dry-run")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "Dry run: 2 partitions would be processed") || !strings.Contains(r.stdout, "orders/2024-01-17") {
		t.Fatalf("dry run:\n%s", r.stdout)
	}
	r = run(t, "backfill", "--config", cfg, "--domain", "orders", "--from", "2024-01-15", "--to", "2024-01-17", "--format", "json")
	var sum pipeline.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || r.code != cli.ExitOK {
		t.Fatalf("backfill json: exit %d %v\n%s", r.code, err, r.stdout)
	}
	if len(sum.Domains) != 1 || sum.Domains[0].Reset != 2 || sum.Domains[0].Done != 2 || len(sum.Missing) != 1 {
		t.Fatalf("backfill summary: %+v", sum)
	}

	// A run while another holds the lock exits 1 at once and says why.
	store, err := meta.Open(context.Background(), "sqlite://"+filepath.Join(filepath.Dir(cfg), "medallion.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	release, err := store.TryLock(context.Background(), pipeline.LockName)
	if err != nil {
		t.Fatal(err)
	}
	r = run(t, "run", "--config", cfg)
	if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "another medallion run or backfill is in progress") {
		t.Fatalf("overlapping run: exit %d stderr %q", r.code, r.stderr)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
}

func TestRunUsageErrors(t *testing.T) {
	cfg := project(t, "sqlite://./medallion.db")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"backfill", "--config", cfg, "--from", "2024-01-15"}, "backfill needs --from and --to"},
		{[]string{"backfill", "--config", cfg, "--from", "2024-01-15", "--to", "2024-01-10"}, "--to 2024-01-10 is before --from 2024-01-15"},
		{[]string{"backfill", "--config", cfg, "--from", "2024-01-15", "--to", "2024-02-30"}, `--to: invalid date "2024-02-30"`},
		{[]string{"backfill", "--config", cfg, "--from", "2024-01-15", "--to", "2024-01-16", "--reprocess", "some"}, `--reprocess "some": want all or failed`},
		{[]string{"run", "--config", cfg, "--domain", "payments"}, `unknown domain "payments"`},
		{[]string{"run", "--config", cfg, "--format", "yaml"}, `--format "yaml"`},
	}
	for _, tc := range cases {
		r := run(t, tc.args...)
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d stderr %q, want 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

func TestScheduleRejectsABadCron(t *testing.T) {
	cfg := project(t, "sqlite://./medallion.db")
	if r := run(t, "schedule", "--config", cfg, "--cron", "every morning"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, `--cron "every morning"`) {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
}

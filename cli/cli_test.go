package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/cli"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// project writes a medallion.yaml using metaURL into a fresh folder and
// returns its path; the domains are the built-in reference domains.
func project(t *testing.T, metaURL string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := "storage:\n  url: ./lake\nmeta:\n  url: " + metaURL + "\n"
	p := filepath.Join(dir, "medallion.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func stores(t *testing.T) map[string]string {
	return map[string]string{"sqlite": "sqlite://./medallion.db", "postgres": testenv.PostgresSchema(t)}
}

func TestStatusEmptyStore(t *testing.T) {
	for kind, url := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			cfg := project(t, url)
			r := run(t, "status", "--config", cfg)
			if r.code != cli.ExitOK {
				t.Fatalf("exit %d, stderr %s", r.code, r.stderr)
			}
			for _, want := range []string{kind + " store", "events", "orders", "restaurants", "users", "No partitions tracked yet"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			r = run(t, "status", "--config", cfg, "--format", "json")
			var out struct {
				Store   string `json:"store"`
				Domains []struct {
					Domain string         `json:"domain"`
					Counts map[string]int `json:"counts"`
					Total  int            `json:"total"`
				} `json:"domains"`
				Total struct{ Total int } `json:"total"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("status json: %v\n%s", err, r.stdout)
			}
			if out.Store != kind || len(out.Domains) != 4 || out.Total.Total != 0 || len(out.Domains[0].Counts) != 9 {
				t.Fatalf("status json = %+v", out)
			}
		})
	}
}

func TestStatusCountsAndExitCodes(t *testing.T) {
	for kind, url := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			cfg := project(t, url)
			if kind == "sqlite" {
				url = "sqlite://" + filepath.Join(filepath.Dir(cfg), "medallion.db")
			}
			s, err := meta.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			k1 := medtype.PartitionKey{Domain: "orders", Date: medtype.MustDate("2024-01-15")}
			k2 := medtype.PartitionKey{Domain: "orders", Date: medtype.MustDate("2024-01-16")}
			for _, st := range []meta.State{medtype.StatePending, medtype.StateInFlight, medtype.StateDone} {
				if _, err := s.Transition(ctx, k1, st, meta.Update{Worker: "w"}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Transition(ctx, k2, medtype.StatePending, meta.Update{}); err != nil {
				t.Fatal(err)
			}
			r := run(t, "status", "--config", cfg, "-f", "json")
			if r.code != cli.ExitOK || !strings.Contains(r.stdout, `"DONE": 1`) || !strings.Contains(r.stdout, `"PENDING": 1`) {
				t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			// A failed partition makes status exit 1 for cron alerting.
			if _, err := s.Transition(ctx, k2, medtype.StateInFlight, meta.Update{Worker: "w"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Transition(ctx, k2, medtype.StateFailed, meta.Update{Worker: "w", Error: "gold: boom"}); err != nil {
				t.Fatal(err)
			}
			r = run(t, "status", "--config", cfg)
			if r.code != cli.ExitFailed || r.stderr != "" {
				t.Fatalf("with a FAILED partition: exit %d stderr %q", r.code, r.stderr)
			}
			r = run(t, "status", "--config", cfg, "--domain", "orders")
			if r.code != cli.ExitFailed || !strings.Contains(squash(r.stdout), "2024-01-16 FAILED") || !strings.Contains(r.stdout, "gold: boom") {
				t.Fatalf("domain status: exit %d\n%s", r.code, r.stdout)
			}
			r = run(t, "status", "--config", cfg, "--domain", "orders", "--date", "2024-01-15")
			if r.code != cli.ExitOK || !strings.Contains(squash(r.stdout), "IN_FLIGHT DONE") || !strings.Contains(squash(r.stdout), "UNDISCOVERED PENDING") {
				t.Fatalf("partition status: exit %d\n%s", r.code, r.stdout)
			}
		})
	}
}

func TestUsageAndConfigErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("storage:\n  url: ./lake\npipeline:\n  wokers: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := project(t, "sqlite://./m.db")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"status", "--config", bad}, bad + `:4: pipeline.wokers: unknown key (did you mean "workers"?)`},
		{[]string{"status", "--config", filepath.Join(dir, "missing.yaml")}, "missing.yaml: config file not found"},
		{[]string{"status", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"status", "extra-arg"}, `unknown command "extra-arg"`},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"status", "--config", good, "--format", "xml"}, `--format "xml": want table or json`},
		{[]string{"status", "--config", good, "--domain", "payments"}, `unknown domain "payments" (configured: events, orders, restaurants, users)`},
		{[]string{"status", "--config", good, "--date", "2024-01-01"}, "--date needs --domain"},
		{[]string{"--log-level", "loud", "status"}, `--log-level "loud"`},
	}
	for _, tc := range cases {
		r := run(t, tc.args...)
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

func TestUnreachablePostgresIsAnError(t *testing.T) {
	cfg := project(t, "postgres://nobody@127.0.0.1:1/nowhere?connect_timeout=2")
	r := run(t, "status", "--config", cfg)
	if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "open meta store (meta.url in "+cfg+")") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
}

// squash collapses runs of spaces, so assertions do not depend on column
// widths.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

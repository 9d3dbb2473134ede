package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/medallionlake/medallion/cli"
	"github.com/medallionlake/medallion/medtype"
)

// TestStatusListsPastSLA: two days of data that stopped three days ago
// leave the days after them without bronze past their 6h SLA: run says so,
// status lists them (NO BRONZE, with how late), and the JSON carries them;
// the DONE days are not listed.
func TestStatusListsPastSLA(t *testing.T) {
	cfg := project(t, "sqlite://./medallion.db")
	today := medtype.DateOf(time.Now().UTC())
	start := today.AddDays(-5)
	if r := run(t, "generate", "--config", cfg, "--start", start.String(), "--days", "2", "--events-per-day", "200"); r.code != cli.ExitOK {
		t.Fatalf("generate: %s", r.stderr)
	}
	r := run(t, "run", "--config", cfg)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "partitions are past their SLA (the oldest: events/"+today.AddDays(-3).String()+", UNDISCOVERED)") {
		t.Fatalf("run: exit %d\n%s", r.code, r.stdout)
	}
	r = run(t, "status", "--config", cfg)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "Past their SLA") ||
		!strings.Contains(squash(r.stdout), "orders "+today.AddDays(-2).String()+" NO BRONZE "+today.AddDays(-1).String()+"T06:00:00Z") {
		t.Fatalf("status: exit %d\n%s", r.code, r.stdout)
	}
	r = run(t, "status", "--config", cfg, "--format", "json")
	var out struct {
		PastSLA []struct {
			Partition medtype.PartitionKey `json:"partition"`
			State     string               `json:"state"`
			Late      time.Duration        `json:"late_ns"`
		} `json:"past_sla"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range out.PastSLA {
		seen[m.Partition.String()] = true
		if m.State != "UNDISCOVERED" || m.Late <= 0 || m.Partition.Date.Before(today.AddDays(-3)) {
			t.Errorf("listed: %+v", m)
		}
	}
	for _, d := range []string{"events", "orders", "restaurants", "users"} {
		for _, back := range []int{3, 2} {
			if k := d + "/" + today.AddDays(-back).String(); !seen[k] {
				t.Errorf("%s is not listed past its SLA: %v", k, seen)
			}
		}
	}
}

package sla_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/meta/metatest"
	"github.com/medallionlake/medallion/sla"
)

// TestCheck: with a 6h SLA, checked at 2024-03-06 03:00 UTC, the
// partitions due by then (up to 2024-03-04, due 2024-03-05 06:00) that are
// not DONE are past it, with how late, and so is a day between that no
// bronze arrived for; DONE, not-yet-due and older than 30 days partitions
// are not, nor a domain without an SLA; a domain whose data stopped long
// ago misses every day of the last 30 due. Both stores.
func TestCheck(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "m.db") },
		"postgres": func(t *testing.T) string { return testenv.PostgresSchema(t) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store, err := meta.Open(ctx, url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			key := func(domain, day string) medtype.PartitionKey {
				return medtype.PartitionKey{Domain: domain, Date: medtype.MustDate(day)}
			}
			for day, state := range map[string]meta.State{
				"2024-03-01": medtype.StateDone, "2024-03-02": medtype.StateFailed,
				"2024-03-04": medtype.StatePending, "2024-03-05": medtype.StatePending,
			} {
				metatest.DriveTo(t, store, key("orders", day), state)
				metatest.DriveTo(t, store, key("events", day), medtype.StateFailed)
			}
			metatest.DriveTo(t, store, key("orders", "2024-01-10"), medtype.StateFailed) // before the 30 days
			metatest.DriveTo(t, store, key("users", "2024-01-01"), medtype.StateDone)
			doms := []config.Domain{{Name: "orders", SLA: 6 * time.Hour}, {Name: "events"}, {Name: "users", SLA: 6 * time.Hour}}
			now := time.Date(2024, 3, 6, 3, 0, 0, 0, time.UTC)
			misses, err := sla.Check(ctx, store, doms, now)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			count := map[string]int{}
			for _, m := range misses {
				if m.Key.Date.Before(medtype.MustDate("2024-02-05")) {
					t.Errorf("a miss older than 30 days: %+v", m)
				}
				if count[m.Key.Domain]++; m.Key.Domain == "users" || m.Key.Date.Before(medtype.MustDate("2024-03-01")) {
					continue // days without bronze, counted below
				}
				got = append(got, fmt.Sprintf("%s %s due %s late %s", m.Key, m.State, m.Deadline.Format(time.RFC3339), m.Late))
			}
			want := []string{
				"orders/2024-03-02 FAILED due 2024-03-03T06:00:00Z late 69h0m0s",
				"orders/2024-03-03 UNDISCOVERED due 2024-03-04T06:00:00Z late 45h0m0s",
				"orders/2024-03-04 PENDING due 2024-03-05T06:00:00Z late 21h0m0s",
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("misses:\n%v\nwant\n%v", got, want)
			}
			// 2024-02-05 (30 days back) to 2024-03-04: 29 days due; orders
			// misses all but 2024-03-01 (DONE), users every one.
			if count["users"] != 29 || count["orders"] != 28 || count["events"] != 0 {
				t.Fatalf("misses per domain: %v, want users 29 (every due day), orders 28, events 0", count)
			}
		})
	}
}

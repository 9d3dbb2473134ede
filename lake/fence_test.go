package lake_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/meta/metatest"
)

// lease claims the partition of day for worker.
func lease(t *testing.T, s meta.Store, day, worker string) meta.Lease {
	t.Helper()
	k := medtype.PartitionKey{Domain: "events", Date: medtype.MustDate(day)}
	metatest.DriveTo(t, s, k, medtype.StatePending)
	got, err := s.Claim(context.Background(), meta.ClaimParams{Worker: worker, LeaseTTL: time.Minute,
		Filter: meta.Filter{Domains: []string{"events"}, From: k.Date, To: k.Date}})
	if err != nil || len(got) != 1 {
		t.Fatalf("claim %s: %v %v", k, got, err)
	}
	return meta.Lease{Key: k, Worker: worker, Attempt: got[0].Attempts}
}

// TestLeasedWritesAreFenced: a worker's writes commit while it holds its
// lease, concurrent leased writers all commit through Retry, and a worker
// whose lease was rescued, or has expired, commits nothing.
func TestLeasedWritesAreFenced(t *testing.T) {
	for name, newBundle := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := newBundle(t)
			ctx := context.Background()
			id := lake.TableID{Namespace: "silver", Name: "events"}
			def := lake.TableDef{ID: id, PartitionColumn: "event_date"}

			const writers = 4
			writeConcurrently(t, b, def, writers, func(w int, day medtype.Date) *lake.Lake {
				return b.lake.Leased(b.store, lease(t, b.store, day.String(), fmt.Sprintf("w%d", w)), nil)
			})
			c0 := conn(t, b.duck)
			if n, _ := read(t, b, c0, id, nil, lake.Snapshot{}); n != 10*writers+writers*(writers-1)/2 {
				t.Fatalf("after %d leased writers the table has %d rows", writers, n)
			}
			tbl, err := b.lake.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if s := tbl.CurrentSnapshot(); s.Summary.Properties["medallion.worker"] == "" || s.Summary.Properties["medallion.partition"] == "" {
				t.Fatalf("a leased write's snapshot does not say whose it is: %v", s.Summary.Properties)
			}
			before := tbl.CurrentSnapshot().SnapshotID

			// Rescued: the lease expired and another run took it over.
			rescued := lease(t, b.store, "2024-03-01", "stale")
			if _, err := b.store.RescueExpired(ctx, "run-2", time.Now().Add(2*time.Minute)); err != nil {
				t.Fatal(err)
			}
			// Expired, not rescued yet: the worker's clock is past it.
			expired := lease(t, b.store, "2024-03-02", "late")
			for what, l := range map[string]*lake.Lake{
				"rescued": b.lake.Leased(b.store, rescued, nil),
				"expired": b.lake.Leased(b.store, expired, func() time.Time { return time.Now().Add(2 * time.Minute) }),
			} {
				day := medtype.MustDate(map[string]string{"rescued": "2024-03-01", "expired": "2024-03-02"}[what])
				events(t, c0, day.String(), 7, 1)
				_, err := l.Write(ctx, c0, def, "src", lake.PartitionScope("event_date", day), b.stage)
				if !errors.Is(err, meta.ErrLeaseLost) {
					t.Fatalf("a write with a lease %s: %v", what, err)
				}
			}
			tbl, err = b.lake.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if tbl.CurrentSnapshot().SnapshotID != before {
				t.Fatal("a write without its lease committed a snapshot")
			}
			if n, _ := read(t, b, c0, id, nil, lake.Snapshot{}); n != 10*writers+writers*(writers-1)/2 {
				t.Fatalf("writes without their lease changed the table: %d rows", n)
			}
		})
	}
}

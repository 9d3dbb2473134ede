// Package metatest is the conformance suite every meta.Store passes.
package metatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
)

// Opener opens a new handle on one database; two handles behave like two
// processes sharing the store.
type Opener func(t *testing.T) meta.Store

// Run runs the suite. fresh creates an empty database and returns its opener.
func Run(t *testing.T, fresh func(t *testing.T) Opener) {
	setup := func(t *testing.T) (meta.Store, Opener) {
		open := fresh(t)
		return open(t), open
	}
	ctx := context.Background()
	t0 := time.Date(2024, 1, 20, 6, 0, 0, 0, time.UTC)

	t.Run("EmptyStore", func(t *testing.T) {
		s, _ := setup(t)
		sum, err := s.Summary(ctx)
		must(t, err)
		parts, err := s.List(ctx, meta.Filter{})
		must(t, err)
		runs, err := s.Runs(ctx, 10)
		must(t, err)
		if len(sum) != 0 || len(parts) != 0 || len(runs) != 0 {
			t.Fatalf("empty store has summary %v, partitions %v, runs %v", sum, parts, runs)
		}
		_, err = s.Get(ctx, key("orders", "2024-01-15"))
		if !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("get of an undiscovered partition: %v", err)
		}
	})

	t.Run("ReopenKeepsData", func(t *testing.T) {
		s, open := setup(t)
		_, err := s.Transition(ctx, key("orders", "2024-01-15"), medtype.StatePending, meta.Update{})
		must(t, err)
		must(t, s.Close())
		s2 := open(t)
		p, err := s2.Get(ctx, key("orders", "2024-01-15"))
		must(t, err)
		if p.Status != medtype.StatePending {
			t.Fatalf("after reopen status = %s", p.Status)
		}
	})

	// Every (from, to) pair: exactly the pairs of the table succeed, and a
	// refused transition changes nothing.
	t.Run("TransitionWalk", func(t *testing.T) {
		s, _ := setup(t)
		states := medtype.PartitionStates()
		day := 0
		for _, from := range states {
			for _, to := range states {
				day++
				k := medtype.PartitionKey{Domain: "walk", Date: medtype.MustDate("2020-01-01").AddDays(day)}
				DriveTo(t, s, k, from)
				_, err := s.Transition(ctx, k, to, meta.Update{Worker: "driver", Error: "boom"})
				allowed := meta.CanTransition(from, to)
				if allowed && err != nil {
					t.Errorf("%s -> %s: allowed by the table but failed: %v", from, to, err)
					continue
				}
				if !allowed {
					if !errors.Is(err, meta.ErrNotAllowed) {
						t.Errorf("%s -> %s: not in the table, err = %v, want ErrNotAllowed", from, to, err)
					}
					if got := stateOf(t, s, k); got != from {
						t.Errorf("%s -> %s: refused, but state is now %s", from, to, got)
					}
					continue
				}
				if got := stateOf(t, s, k); got != to {
					t.Errorf("%s -> %s: state is %s", from, to, got)
				}
				h, err := s.History(ctx, k, 1)
				must(t, err)
				if len(h) != 1 || h[0].From != from || h[0].To != to {
					t.Errorf("%s -> %s: last history event = %+v", from, to, h)
				}
			}
		}
	})

	t.Run("ColumnsRoundTrip", func(t *testing.T) {
		s, _ := setup(t)
		k := key("orders", "2024-01-15")
		hash := "abc123"
		n, sil, gold, dur := int64(1000), int64(990), int64(12), int64(1534)
		files := []string{"bronze/orders/order_date=2024-01-15/raw-orders+0+00000000000000000000.parquet"}
		_, err := s.Transition(ctx, k, medtype.StatePending, meta.Update{RunID: "run-1", SourceFiles: files, FileHash: &hash, Now: t0})
		must(t, err)
		p, err := s.Transition(ctx, k, medtype.StateInFlight, meta.Update{RunID: "run-1", Worker: "host-1", LeaseTTL: time.Minute, Now: t0})
		must(t, err)
		if p.LeasedBy != "host-1" || !p.LeaseExpiresAt.Equal(t0.Add(time.Minute)) || p.Attempts != 1 {
			t.Fatalf("in flight: leased_by %q expires %v attempts %d", p.LeasedBy, p.LeaseExpiresAt, p.Attempts)
		}
		silverPath, goldPath := "warehouse/silver/orders", "warehouse/gold/orders_daily"
		p, err = s.Transition(ctx, k, medtype.StateDone, meta.Update{
			RunID: "run-1", Worker: "host-1", Attempt: 1, RecordCount: &n, SilverRecords: &sil, GoldRecords: &gold,
			SilverPath: &silverPath, GoldPath: &goldPath, DurationMS: &dur,
			Snapshots: map[string]int64{"silver.orders": 42, "gold.orders_daily": 7}, Now: t0.Add(2 * time.Second),
		})
		must(t, err)
		want := meta.Partition{
			Key: k, Status: medtype.StateDone, RunID: "run-1", RecordCount: n, SilverRecords: sil, GoldRecords: gold,
			SourceFiles: files, FileHash: hash, Attempts: 1, SilverPath: silverPath, GoldPath: goldPath,
			Snapshots: map[string]int64{"silver.orders": 42, "gold.orders_daily": 7}, DurationMS: dur,
			CreatedAt: t0, UpdatedAt: t0.Add(2 * time.Second), ProcessedAt: t0.Add(2 * time.Second),
		}
		if fmt.Sprintf("%+v", p) != fmt.Sprintf("%+v", want) {
			t.Fatalf("done partition\n got %+v\nwant %+v", p, want)
		}
		// A reset returns to PENDING and clears retries and the error.
		_, err = s.Transition(ctx, k, medtype.StatePending, meta.Update{Now: t0.Add(time.Hour)})
		must(t, err)
		_, err = s.Transition(ctx, k, medtype.StateInFlight, meta.Update{Worker: "w", Now: t0.Add(time.Hour)})
		must(t, err)
		p, err = s.Transition(ctx, k, medtype.StateFailed, meta.Update{Worker: "w", Error: "gold: division by zero"})
		must(t, err)
		if p.ErrorMessage != "gold: division by zero" || p.LeasedBy != "" || !p.LeaseExpiresAt.IsZero() || p.Attempts != 2 {
			t.Fatalf("failed partition: %+v", p)
		}
		p, err = s.Transition(ctx, k, medtype.StateRetrying, meta.Update{})
		must(t, err)
		if p.RetryCount != 1 || p.ErrorMessage != "gold: division by zero" {
			t.Fatalf("retrying: retry_count %d error %q", p.RetryCount, p.ErrorMessage)
		}
		p, err = s.Transition(ctx, k, medtype.StatePending, meta.Update{})
		must(t, err)
		if p.RetryCount != 0 || p.ErrorMessage != "" {
			t.Fatalf("reset: retry_count %d error %q", p.RetryCount, p.ErrorMessage)
		}
	})

	t.Run("DiscoverAndLateData", func(t *testing.T) {
		s, _ := setup(t)
		k := key("events", "2024-01-15")
		d, err := s.Discover(ctx, k, []string{"b", "a"}, "h1", "run-1", t0)
		must(t, err)
		if d.From != medtype.StateUndiscovered || d.To != medtype.StatePending || !slices.Equal(d.Added, []string{"a", "b"}) {
			t.Fatalf("first discovery: %+v", d)
		}
		p, _ := s.Get(ctx, k)
		if !slices.Equal(p.SourceFiles, []string{"a", "b"}) || p.FileHash != "h1" {
			t.Fatalf("stored files %v hash %q", p.SourceFiles, p.FileHash)
		}
		d, err = s.Discover(ctx, k, []string{"a", "b"}, "h1", "run-2", t0)
		must(t, err)
		if d.HashChanged || d.To != medtype.StatePending {
			t.Fatalf("rediscovery with the same hash: %+v", d)
		}
		// Pending with a new file: the list is updated, the state is not.
		d, err = s.Discover(ctx, k, []string{"a", "b", "c"}, "h2", "run-2", t0)
		must(t, err)
		if !d.HashChanged || d.To != medtype.StatePending || stateOf(t, s, k) != medtype.StatePending {
			t.Fatalf("pending with new files: %+v", d)
		}
		DriveTo(t, s, k, medtype.StateDone)
		d, err = s.Discover(ctx, k, []string{"a", "b", "c"}, "h2", "run-3", t0)
		must(t, err)
		if d.HashChanged || d.To != medtype.StateDone {
			t.Fatalf("done with unchanged files: %+v", d)
		}
		d, err = s.Discover(ctx, k, []string{"a", "c", "d"}, "h3", "run-3", t0)
		must(t, err)
		if d.From != medtype.StateDone || d.To != medtype.StateLate || !slices.Equal(d.Added, []string{"d"}) || !slices.Equal(d.Removed, []string{"b"}) {
			t.Fatalf("late data: %+v", d)
		}
		p, _ = s.Get(ctx, k)
		if p.Status != medtype.StateLate || p.FileHash != "h3" || !slices.Equal(p.SourceFiles, []string{"a", "c", "d"}) {
			t.Fatalf("late partition: %+v", p)
		}
		// An IN_FLIGHT partition belongs to its worker: discovery leaves it.
		k2 := key("events", "2024-01-16")
		DriveTo(t, s, k2, medtype.StateInFlight)
		before, _ := s.Get(ctx, k2)
		d, err = s.Discover(ctx, k2, []string{"z"}, "hz", "run-3", t0)
		must(t, err)
		after, _ := s.Get(ctx, k2)
		if d.To != medtype.StateInFlight || after.FileHash != before.FileHash || after.Status != medtype.StateInFlight {
			t.Fatalf("discovery touched an in-flight partition: %+v -> %+v", before, after)
		}
	})

	t.Run("FileHashes", func(t *testing.T) {
		s, _ := setup(t)
		for i, k := range []medtype.PartitionKey{key("events", "2024-01-15"), key("events", "2024-01-16"), key("orders", "2024-01-15")} {
			_, err := s.Discover(ctx, k, []string{"f"}, fmt.Sprintf("h%d", i), "run-1", t0)
			must(t, err)
		}
		got, err := s.FileHashes(ctx, meta.Filter{Domains: []string{"events"}, From: medtype.MustDate("2024-01-16")})
		must(t, err)
		if len(got) != 1 || got[key("events", "2024-01-16")] != "h1" {
			t.Fatalf("file hashes: %v", got)
		}
		if all, err := s.FileHashes(ctx, meta.Filter{}); err != nil || len(all) != 3 || all[key("orders", "2024-01-15")] != "h2" {
			t.Fatalf("all file hashes: %v %v", all, err)
		}
	})

	t.Run("TableMaintenance", func(t *testing.T) {
		s, open := setup(t)
		must(t, s.RecordMaintained(ctx, meta.Maintained{Table: "gold.a", MetadataLocation: "m1", At: t0}))
		must(t, s.RecordMaintained(ctx, meta.Maintained{Table: "gold.b", MetadataLocation: "m1", At: t0}))
		must(t, s.RecordMaintained(ctx, meta.Maintained{Table: "gold.a", MetadataLocation: "m2", At: t0.Add(time.Hour)}))
		got, err := open(t).Maintained(ctx)
		must(t, err)
		if a := got["gold.a"]; len(got) != 2 || a.MetadataLocation != "m2" || !a.At.Equal(t0.Add(time.Hour)) || !got["gold.b"].At.Equal(t0) {
			t.Fatalf("maintained: %+v", got)
		}
	})

	t.Run("BronzeListing", func(t *testing.T) {
		s, open := setup(t)
		if l, err := s.Listing(ctx, "orders"); err != nil || !l.Newest.IsZero() || !l.ListedAll.IsZero() {
			t.Fatalf("an empty store's listing: %+v %v", l, err)
		}
		DriveTo(t, s, key("orders", "2024-01-15"), medtype.StateDone)
		DriveTo(t, s, key("orders", "2024-02-03"), medtype.StatePending)
		DriveTo(t, s, key("users", "2024-03-01"), medtype.StatePending)
		must(t, s.RecordFullListing(ctx, "orders", t0))
		must(t, s.RecordFullListing(ctx, "orders", t0.Add(time.Hour)))
		l, err := open(t).Listing(ctx, "orders")
		must(t, err)
		if l.Oldest != medtype.MustDate("2024-01-15") || l.Newest != medtype.MustDate("2024-02-03") || !l.ListedAll.Equal(t0.Add(time.Hour)) {
			t.Fatalf("listing: %+v", l)
		}
		if l, err := s.Listing(ctx, "users"); err != nil || l.Newest != medtype.MustDate("2024-03-01") || !l.ListedAll.IsZero() {
			t.Fatalf("users' listing: %+v %v", l, err)
		}
	})

	t.Run("RequeueRetriesThenDead", func(t *testing.T) {
		s, _ := setup(t)
		k := key("orders", "2024-01-15")
		late := key("orders", "2024-01-16")
		other := key("users", "2024-01-15")
		DriveTo(t, s, late, medtype.StateLate)
		DriveTo(t, s, other, medtype.StateFailed)
		DriveTo(t, s, k, medtype.StateFailed)
		const maxRetries = 2
		for retry := 1; retry <= maxRetries; retry++ {
			res, err := s.Requeue(ctx, "orders", maxRetries, "run", t0)
			must(t, err)
			if !slices.Equal(res.Retrying, []medtype.PartitionKey{k}) || len(res.Dead) != 0 {
				t.Fatalf("requeue %d: %+v", retry, res)
			}
			if retry == 1 && !slices.Equal(res.Reprocessing, []medtype.PartitionKey{late}) {
				t.Fatalf("late partition not requeued: %+v", res)
			}
			p, _ := s.Get(ctx, k)
			if p.RetryCount != retry || p.Status != medtype.StateRetrying {
				t.Fatalf("after requeue %d: %s retry_count %d", retry, p.Status, p.RetryCount)
			}
			DriveTo(t, s, k, medtype.StateFailed)
		}
		res, err := s.Requeue(ctx, "orders", maxRetries, "run", t0)
		must(t, err)
		if !slices.Equal(res.Dead, []medtype.PartitionKey{k}) || stateOf(t, s, k) != medtype.StateDead {
			t.Fatalf("after %d retries: %+v, state %s", maxRetries, res, stateOf(t, s, k))
		}
		if stateOf(t, s, other) != medtype.StateFailed || stateOf(t, s, late) != medtype.StateReprocessing {
			t.Fatal("requeue of one domain touched another")
		}
	})

	t.Run("InterruptionsDoNotCountAgainstRetries", func(t *testing.T) {
		s, _ := setup(t)
		k := key("orders", "2024-01-15")
		const maxRetries = 2
		DriveTo(t, s, k, medtype.StatePending)
		fail := func(interrupted bool) {
			t.Helper()
			got, err := s.Claim(ctx, meta.ClaimParams{Worker: "w", Limit: 1, LeaseTTL: time.Minute, Now: t0})
			must(t, err)
			if len(got) != 1 {
				t.Fatalf("nothing to claim: %s", stateOf(t, s, k))
			}
			_, err = s.Transition(ctx, k, medtype.StateFailed, meta.Update{Worker: "w", Attempt: got[0].Attempts, Error: "x", Interrupted: interrupted})
			must(t, err)
		}
		// More interruptions than max_retries, and a crash whose lease is
		// rescued: the partition is retried every time and never counted.
		for i := 0; i < maxRetries+2; i++ {
			fail(true)
			res, err := s.Requeue(ctx, "orders", maxRetries, "run", t0)
			must(t, err)
			if !slices.Equal(res.Retrying, []medtype.PartitionKey{k}) {
				t.Fatalf("interruption %d: requeue %+v", i+1, res)
			}
		}
		_, err := s.Claim(ctx, meta.ClaimParams{Worker: "crashed", Limit: 1, LeaseTTL: time.Minute, Now: t0})
		must(t, err)
		rescued, err := s.RescueExpired(ctx, "run", t0.Add(2*time.Minute))
		must(t, err)
		if len(rescued) != 1 || !rescued[0].RetryExempt {
			t.Fatalf("rescue = %+v", rescued)
		}
		_, err = s.Requeue(ctx, "orders", maxRetries, "run", t0)
		must(t, err)
		if p, _ := s.Get(ctx, k); p.RetryCount != 0 || p.Status != medtype.StateRetrying {
			t.Fatalf("after %d interruptions and a rescue: %s, retry_count %d", maxRetries+2, p.Status, p.RetryCount)
		}
		// Real failures still count, and end DEAD after max_retries.
		for retry := 1; retry <= maxRetries; retry++ {
			fail(false)
			_, err := s.Requeue(ctx, "orders", maxRetries, "run", t0)
			must(t, err)
			if p, _ := s.Get(ctx, k); p.RetryCount != retry || p.RetryExempt {
				t.Fatalf("failure %d: retry_count %d, exempt %v", retry, p.RetryCount, p.RetryExempt)
			}
		}
		fail(false)
		res, err := s.Requeue(ctx, "orders", maxRetries, "run", t0)
		must(t, err)
		if !slices.Equal(res.Dead, []medtype.PartitionKey{k}) {
			t.Fatalf("after %d counted failures: %+v", maxRetries+1, res)
		}
		// The history keeps every interruption.
		hist, err := s.History(ctx, k, 100)
		must(t, err)
		notCounted := 0
		for _, h := range hist {
			if strings.Contains(h.Message, "not counted") {
				notCounted++
			}
		}
		if notCounted != maxRetries+3 {
			t.Fatalf("history has %d uncounted retries, want %d", notCounted, maxRetries+3)
		}
	})

	t.Run("ClaimOrderAndFilters", func(t *testing.T) {
		s, _ := setup(t)
		for _, k := range []medtype.PartitionKey{
			key("orders", "2024-01-17"), key("orders", "2024-01-15"), key("users", "2024-01-15"), key("orders", "2024-01-16"),
		} {
			DriveTo(t, s, k, medtype.StatePending)
		}
		DriveTo(t, s, key("orders", "2024-01-10"), medtype.StateDone) // not queued
		DriveTo(t, s, key("orders", "2024-01-11"), medtype.StateRetrying)
		DriveTo(t, s, key("orders", "2024-01-12"), medtype.StateReprocessing)
		got, err := s.Claim(ctx, meta.ClaimParams{Worker: "w1", Limit: 3, LeaseTTL: time.Minute, Filter: meta.Filter{Domains: []string{"orders"}}, Now: t0})
		must(t, err)
		if ks := keysOf(got); !slices.Equal(ks, []string{"orders/2024-01-11", "orders/2024-01-12", "orders/2024-01-15"}) {
			t.Fatalf("first claim = %v", ks)
		}
		for _, p := range got {
			if p.Status != medtype.StateInFlight || p.LeasedBy != "w1" || !p.LeaseExpiresAt.Equal(t0.Add(time.Minute)) {
				t.Fatalf("claimed partition: %+v", p)
			}
		}
		got, err = s.Claim(ctx, meta.ClaimParams{Worker: "w2", Limit: 10, Filter: meta.Filter{From: medtype.MustDate("2024-01-16"), To: medtype.MustDate("2024-01-16")}})
		must(t, err)
		if ks := keysOf(got); !slices.Equal(ks, []string{"orders/2024-01-16"}) {
			t.Fatalf("date-filtered claim = %v", ks)
		}
		got, err = s.Claim(ctx, meta.ClaimParams{Worker: "w3", Limit: 10})
		must(t, err)
		if ks := keysOf(got); !slices.Equal(ks, []string{"users/2024-01-15", "orders/2024-01-17"}) {
			t.Fatalf("remaining claim = %v", ks)
		}
		got, err = s.Claim(ctx, meta.ClaimParams{Worker: "w4", Limit: 10})
		must(t, err)
		if len(got) != 0 {
			t.Fatalf("claim of an empty queue = %v", keysOf(got))
		}
	})

	// Two handles (two processes) and several goroutines each claim from the
	// same queue: every partition is claimed exactly once.
	t.Run("ClaimRace", func(t *testing.T) {
		s, open := setup(t)
		s2 := open(t)
		const n = 60
		for i := 0; i < n; i++ {
			DriveTo(t, s, medtype.PartitionKey{Domain: "events", Date: medtype.MustDate("2024-01-01").AddDays(i)}, medtype.StatePending)
		}
		var mu sync.Mutex
		claimed := map[string][]string{}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := 0; w < 8; w++ {
			store := s
			if w%2 == 1 {
				store = s2
			}
			worker := fmt.Sprintf("w%d", w)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := store.Claim(ctx, meta.ClaimParams{Worker: worker, Limit: 3, LeaseTTL: time.Minute})
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, p := range got {
						claimed[p.Key.String()] = append(claimed[p.Key.String()], worker)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(claimed) != n {
			t.Fatalf("claimed %d distinct partitions, want %d", len(claimed), n)
		}
		for k, ws := range claimed {
			if len(ws) != 1 {
				t.Errorf("%s claimed %d times: %v", k, len(ws), ws)
			}
			p, err := s.Get(ctx, medtype.PartitionKey{Domain: "events", Date: medtype.MustDate(k[len("events/"):])})
			must(t, err)
			if p.Attempts != 1 || p.LeasedBy != ws[0] {
				t.Errorf("%s: attempts %d leased_by %q, claimed by %v", k, p.Attempts, p.LeasedBy, ws)
			}
		}
	})

	t.Run("ConcurrentTransitionOneWins", func(t *testing.T) {
		s, open := setup(t)
		s2 := open(t)
		k := key("orders", "2024-01-15")
		DriveTo(t, s, k, medtype.StatePending)
		var wg sync.WaitGroup
		results := make([]error, 2)
		for i, st := range []meta.Store{s, s2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, results[i] = st.Transition(ctx, k, medtype.StateInFlight, meta.Update{Worker: fmt.Sprintf("w%d", i)})
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range results {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, meta.ErrConflict), errors.Is(err, meta.ErrNotAllowed):
			default:
				t.Fatalf("unexpected error: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d transitions won, want exactly 1 (%v)", wins, results)
		}
	})

	t.Run("LeasesAndRescue", func(t *testing.T) {
		s, _ := setup(t)
		k := key("orders", "2024-01-15")
		DriveTo(t, s, k, medtype.StatePending)
		got, err := s.Claim(ctx, meta.ClaimParams{Worker: "w1", Limit: 1, LeaseTTL: time.Minute, Now: t0})
		must(t, err)
		attempt := got[0].Attempts
		_, err = s.Transition(ctx, k, medtype.StateDone, meta.Update{Worker: "w2", Attempt: attempt})
		if !errors.Is(err, meta.ErrLeaseLost) {
			t.Fatalf("done by a worker without the lease: %v", err)
		}
		must(t, s.Heartbeat(ctx, k, "w1", attempt, time.Minute, t0.Add(50*time.Second)))
		if err := s.Heartbeat(ctx, k, "w2", attempt, time.Minute, t0); !errors.Is(err, meta.ErrLeaseLost) {
			t.Fatalf("heartbeat by another worker: %v", err)
		}
		rescued, err := s.RescueExpired(ctx, "run-2", t0.Add(61*time.Second))
		must(t, err)
		if len(rescued) != 0 {
			t.Fatalf("rescued a lease that the heartbeat renewed: %v", keysOf(rescued))
		}
		rescued, err = s.RescueExpired(ctx, "run-2", t0.Add(111*time.Second))
		must(t, err)
		if len(rescued) != 1 || rescued[0].Status != medtype.StateFailed || rescued[0].LeasedBy != "" || rescued[0].ErrorMessage == "" {
			t.Fatalf("rescue = %+v", rescued)
		}
		// The crashed worker wakes up and tries to finish: refused.
		if _, err := s.Transition(ctx, k, medtype.StateDone, meta.Update{Worker: "w1", Attempt: attempt}); !errors.Is(err, meta.ErrNotAllowed) {
			t.Fatalf("done after rescue: %v", err)
		}
		if err := s.Heartbeat(ctx, k, "w1", attempt, time.Minute, t0); !errors.Is(err, meta.ErrLeaseLost) {
			t.Fatalf("heartbeat after rescue: %v", err)
		}
		_, err = s.Requeue(ctx, "orders", 3, "run-2", t0)
		must(t, err)
		got, err = s.Claim(ctx, meta.ClaimParams{Worker: "w2", Limit: 1, LeaseTTL: time.Minute, Now: t0.Add(2 * time.Minute)})
		must(t, err)
		if len(got) != 1 || got[0].Attempts != attempt+1 {
			t.Fatalf("reclaim = %+v", got)
		}
		// Same worker id, stale attempt: still refused.
		if _, err := s.Transition(ctx, k, medtype.StateDone, meta.Update{Worker: "w2", Attempt: attempt}); !errors.Is(err, meta.ErrLeaseLost) {
			t.Fatalf("done with a stale attempt: %v", err)
		}
		if _, err := s.Transition(ctx, k, medtype.StateDone, meta.Update{Worker: "w2", Attempt: attempt + 1}); err != nil {
			t.Fatal(err)
		}
	})

	// The lease fence: a fenced write commits only while its worker holds
	// the lease, and a rescue never takes a partition inside the fence.
	t.Run("LeaseFence", func(t *testing.T) {
		s, open := setup(t)
		k := key("orders", "2024-01-15")
		DriveTo(t, s, k, medtype.StatePending)
		got, err := s.Claim(ctx, meta.ClaimParams{Worker: "w1", Limit: 1, LeaseTTL: time.Minute, Now: t0})
		must(t, err)
		held := meta.Lease{Key: k, Worker: "w1", Attempt: got[0].Attempts}
		write := func(table string) func(meta.Tx) error {
			return func(tx meta.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO medallion_table_maintenance (table_name, metadata_location, maintained_at) VALUES (?, ?, ?)`,
					table, "m", t0.Format("2006-01-02T15:04:05.000000Z"))
				return err
			}
		}
		for name, l := range map[string]meta.Lease{
			"another worker":    {Key: k, Worker: "w2", Attempt: held.Attempt},
			"a stale attempt":   {Key: k, Worker: "w1", Attempt: held.Attempt - 1},
			"another partition": {Key: key("orders", "2024-01-16"), Worker: "w1", Attempt: held.Attempt},
		} {
			if err := s.InLease(ctx, l, t0, write("wrong."+name)); !errors.Is(err, meta.ErrLeaseLost) {
				t.Errorf("fenced write by %s: %v", name, err)
			}
		}
		if err := s.InLease(ctx, held, t0.Add(time.Minute), write("wrong.expired")); !errors.Is(err, meta.ErrLeaseLost) {
			t.Errorf("fenced write after the lease expired: %v", err)
		}
		failed := errors.New("the write failed")
		if err := s.InLease(ctx, held, t0, func(tx meta.Tx) error { _ = write("wrong.rolled_back")(tx); return failed }); !errors.Is(err, failed) {
			t.Errorf("fenced write whose function failed: %v", err)
		}

		// While the fence is held, a rescue (another process) of the
		// expired lease passes the row over or waits; it never takes it.
		rescuer := open(t)
		inside, release := make(chan struct{}), make(chan struct{})
		fenced := make(chan error, 1)
		go func() {
			fenced <- s.InLease(ctx, held, t0.Add(59*time.Second), func(tx meta.Tx) error {
				close(inside)
				<-release
				return write("right.fenced")(tx)
			})
		}()
		<-inside
		rescued := make(chan []meta.Partition, 1)
		go func() {
			ps, err := rescuer.RescueExpired(ctx, "run-2", t0.Add(2*time.Minute))
			must(t, err)
			rescued <- ps
		}()
		select {
		case ps := <-rescued:
			if len(ps) != 0 {
				t.Fatalf("a rescue took a partition inside its lease fence: %v", keysOf(ps))
			}
			close(release)
		case <-time.After(500 * time.Millisecond): // SQLite: the rescue waits for the write lock
			close(release)
			if ps := <-rescued; len(ps) != 1 {
				t.Fatalf("a rescue after the fence ended: %v", keysOf(ps))
			}
		}
		must(t, <-fenced)
		m, err := s.Maintained(ctx)
		must(t, err)
		var tables []string
		for name := range m {
			tables = append(tables, name)
		}
		if !slices.Equal(tables, []string{"right.fenced"}) {
			t.Fatalf("fenced writes committed: %v", tables)
		}
		if _, err := s.RescueExpired(ctx, "run-2", t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if st := stateOf(t, s, k); st != medtype.StateFailed {
			t.Fatalf("after the fence and a rescue: %s", st)
		}
		if err := s.InLease(ctx, held, t0, write("wrong.rescued")); !errors.Is(err, meta.ErrLeaseLost) {
			t.Errorf("fenced write after the rescue: %v", err)
		}
	})

	// An alert fires once per partition and cause, again only after the
	// partition was DONE since, and again if its delivery was taken back.
	t.Run("AlertOnce", func(t *testing.T) {
		s, open := setup(t)
		k := key("orders", "2024-01-15")
		DriveTo(t, s, k, medtype.StateFailed)
		now := time.Now().UTC()
		send := func(at time.Time, cause string, want bool) {
			t.Helper()
			got, err := s.AlertOnce(ctx, k, cause, at)
			must(t, err)
			if got != want {
				t.Fatalf("alert %s at %s: send %v, want %v", cause, at.Format(time.TimeOnly), got, want)
			}
		}
		send(now.Add(-time.Hour), "failed", true)
		send(now.Add(-time.Hour+time.Minute), "failed", false)
		send(now.Add(-time.Hour+time.Minute), "dead", true)
		if got, err := open(t).AlertOnce(ctx, k, "failed", now.Add(-30*time.Minute)); err != nil || got {
			t.Fatalf("another process's alert: %v %v", got, err)
		}
		DriveTo(t, s, k, medtype.StateDone) // processed now: a new incident may alert
		send(now.Add(time.Minute), "failed", true)
		send(now.Add(2*time.Minute), "failed", false)
		must(t, s.ForgetAlert(ctx, k, "failed", now.Add(time.Minute)))
		send(now.Add(3*time.Minute), "failed", true)
		send(now.Add(3*time.Minute), "sla", true)
		send(now.Add(3*time.Minute), "sla", false)
		// A day with no partition (an SLA miss for missing bronze).
		gap := key("orders", "2024-01-16")
		for i, want := range []bool{true, false} {
			if got, err := s.AlertOnce(ctx, gap, "sla", now.Add(time.Duration(i)*time.Hour)); err != nil || got != want {
				t.Fatalf("alert %d for a day without a partition: %v %v", i, got, err)
			}
		}
	})

	// An extract's position moves only by compare-and-set: of two
	// extractors that read one position, one moves it; a failed run
	// records its error and leaves the position.
	t.Run("ExtractPositions", func(t *testing.T) {
		s, open := setup(t)
		if _, err := s.Extract(ctx, "app", "orders"); !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("the state of an extract never run: %v", err)
		}
		must(t, s.FailExtract(ctx, "app", "orders", "incremental", "connection refused", t0))
		e, err := s.Extract(ctx, "app", "orders")
		must(t, err)
		if e.Position != "" || e.LastError != "connection refused" || !e.LastRunAt.Equal(t0) || !e.LastSuccessAt.IsZero() {
			t.Fatalf("after a failed first run: %+v", e)
		}
		next := meta.ExtractState{Source: "app", Extract: "orders", Mode: "incremental", Position: "w1", Rows: 10}
		must(t, s.AdvanceExtract(ctx, next, "", t0.Add(time.Minute)))
		other := open(t)
		if err := other.AdvanceExtract(ctx, meta.ExtractState{Source: "app", Extract: "orders", Mode: "incremental", Position: "w1-other", Rows: 10}, "", t0.Add(time.Minute)); !errors.Is(err, meta.ErrConflict) {
			t.Fatalf("a second advance from the same position: %v", err)
		}
		next.Position, next.Rows = "w2", 5
		must(t, other.AdvanceExtract(ctx, next, "w1", t0.Add(2*time.Minute)))
		if err := s.AdvanceExtract(ctx, next, "w1", t0.Add(3*time.Minute)); !errors.Is(err, meta.ErrConflict) {
			t.Fatalf("an advance from a position already left: %v", err)
		}
		must(t, s.FailExtract(ctx, "app", "orders", "incremental", "column updated_at does not exist", t0.Add(4*time.Minute)))
		must(t, s.AdvanceExtract(ctx, meta.ExtractState{Source: "app", Extract: "users", Mode: "cdc", Position: "0/16B3748", Rows: 3}, "", t0))
		must(t, s.RecordRetainedWAL(ctx, "app", "users", 3<<30))
		all, err := open(t).Extracts(ctx)
		must(t, err)
		if len(all) != 2 || all[0].Extract != "orders" || all[1].Position != "0/16B3748" || all[1].RetainedWAL != 3<<30 || all[0].RetainedWAL != -1 {
			t.Fatalf("extracts: %+v", all)
		}
		must(t, s.ForgetExtract(ctx, "app", "users"))
		if _, err := s.Extract(ctx, "app", "users"); !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("a forgotten extract: %v", err)
		}
		o := all[0]
		if o.Position != "w2" || o.Rows != 15 || o.LastError != "column updated_at does not exist" || !o.LastRunAt.Equal(t0.Add(4*time.Minute)) || !o.LastSuccessAt.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("orders after two advances and a failure: %+v", o)
		}
	})

	// A worker waiting for work wakes when another process queues some
	// (PostgreSQL: LISTEN/NOTIFY), or after its poll interval.
	t.Run("WorkNotifications", func(t *testing.T) {
		s, open := setup(t)
		poll := 50 * time.Millisecond
		if s.Kind() == "postgres" {
			poll = time.Minute
		}
		must(t, s.WaitForWork(ctx, time.Millisecond)) // opens the listener
		woke := make(chan error, 1)
		start := time.Now()
		go func() { woke <- s.WaitForWork(ctx, poll) }()
		time.Sleep(20 * time.Millisecond)
		must(t, open(t).NotifyWork(ctx))
		select {
		case err := <-woke:
			must(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("a waiting worker was not woken")
		}
		if s.Kind() == "postgres" && time.Since(start) > 5*time.Second {
			t.Fatalf("woken after %s", time.Since(start))
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.WaitForWork(cancelled, time.Minute); !errors.Is(err, context.Canceled) {
			t.Fatalf("a wait whose context ended: %v", err)
		}
	})

	t.Run("RunLog", func(t *testing.T) {
		s, _ := setup(t)
		must(t, s.StartRun(ctx, meta.Run{ID: "r1", Command: "run", Host: "h", PID: 42, StartedAt: t0}))
		must(t, s.StartRun(ctx, meta.Run{ID: "r2", Command: "backfill", Host: "h", PID: 43, StartedAt: t0.Add(time.Hour)}))
		must(t, s.FinishRun(ctx, meta.Run{ID: "r1", FinishedAt: t0.Add(time.Minute), Outcome: "failed", Partitions: 5, Done: 4, Failed: 1, Error: "1 partition failed"}))
		if err := s.FinishRun(ctx, meta.Run{ID: "nope", Outcome: "ok"}); err == nil {
			t.Fatal("finishing an unknown run succeeded")
		}
		runs, err := s.Runs(ctx, 10)
		must(t, err)
		if len(runs) != 2 || runs[0].ID != "r2" || runs[0].Outcome != "running" || runs[1].Done != 4 || runs[1].Failed != 1 ||
			!runs[1].FinishedAt.Equal(t0.Add(time.Minute)) || runs[1].Error != "1 partition failed" {
			t.Fatalf("runs = %+v", runs)
		}
	})

	t.Run("OverlapLock", func(t *testing.T) {
		s, open := setup(t)
		s2 := open(t)
		release, err := s.TryLock(ctx, "run")
		must(t, err)
		if _, err := s2.TryLock(ctx, "run"); !errors.Is(err, meta.ErrLocked) {
			t.Fatalf("second process took the held lock: %v", err)
		}
		if _, err := s.TryLock(ctx, "run"); !errors.Is(err, meta.ErrLocked) {
			t.Fatalf("same process took the held lock twice: %v", err)
		}
		other, err := s2.TryLock(ctx, "other")
		must(t, err)
		must(t, other())
		must(t, release())
		again, err := s2.TryLock(ctx, "run")
		must(t, err)
		must(t, again())
	})

	t.Run("CancelledContext", func(t *testing.T) {
		s, _ := setup(t)
		k := key("orders", "2024-01-15")
		DriveTo(t, s, k, medtype.StatePending)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		checks := map[string]error{}
		_, checks["get"] = s.Get(cctx, k)
		_, checks["list"] = s.List(cctx, meta.Filter{})
		_, checks["transition"] = s.Transition(cctx, k, medtype.StateInFlight, meta.Update{Worker: "w"})
		_, checks["claim"] = s.Claim(cctx, meta.ClaimParams{Worker: "w", Limit: 1})
		_, checks["discover"] = s.Discover(cctx, k, []string{"x"}, "h", "r", t0)
		_, checks["lock"] = s.TryLock(cctx, "run")
		for op, err := range checks {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context: %v, want context.Canceled", op, err)
			}
		}
		if stateOf(t, s, k) != medtype.StatePending {
			t.Fatal("a cancelled call changed the partition")
		}
	})
}

// DriveTo moves a partition from wherever it is to want along the shortest
// path of allowed transitions (UNDISCOVERED leaves a new partition absent).
func DriveTo(t *testing.T, s meta.Store, k medtype.PartitionKey, want meta.State) {
	t.Helper()
	cur := stateOf(t, s, k)
	prev := map[meta.State]meta.State{cur: cur}
	queue := []meta.State{cur}
	for len(queue) > 0 && want != cur {
		st := queue[0]
		queue = queue[1:]
		for _, next := range medtype.PartitionStates() {
			if _, seen := prev[next]; !seen && meta.CanTransition(st, next) {
				prev[next] = st
				queue = append(queue, next)
			}
		}
	}
	if _, ok := prev[want]; !ok {
		t.Fatalf("drive %s: no path from %s to %s", k, cur, want)
	}
	var path []meta.State
	for st := want; st != cur; st = prev[st] {
		path = append([]meta.State{st}, path...)
	}
	for _, st := range path {
		if _, err := s.Transition(context.Background(), k, st, meta.Update{Worker: "driver", Error: "driven"}); err != nil {
			t.Fatalf("drive %s to %s: %v", k, st, err)
		}
	}
}

func stateOf(t *testing.T, s meta.Store, k medtype.PartitionKey) meta.State {
	t.Helper()
	p, err := s.Get(context.Background(), k)
	if errors.Is(err, meta.ErrNotFound) {
		return medtype.StateUndiscovered
	}
	must(t, err)
	return p.Status
}

func key(domain, date string) medtype.PartitionKey {
	return medtype.PartitionKey{Domain: domain, Date: medtype.MustDate(date)}
}

func keysOf(ps []meta.Partition) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.Key.String())
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

package meta_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/meta/metatest"
)

func TestConformanceSQLite(t *testing.T) {
	metatest.Run(t, func(t *testing.T) metatest.Opener {
		path := filepath.Join(t.TempDir(), "medallion.db")
		t.Logf("meta store: SQLite %s", path)
		return func(t *testing.T) meta.Store { return open(t, "sqlite://"+path) }
	})
}

func TestConformancePostgres(t *testing.T) {
	metatest.Run(t, func(t *testing.T) metatest.Opener {
		url := testenv.PostgresSchema(t)
		return func(t *testing.T) meta.Store { return open(t, url) }
	})
}

func open(t *testing.T, url string) meta.Store {
	t.Helper()
	s, err := meta.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The table itself: every state has a doc'd place in the lifecycle, nothing
// leaves toward UNDISCOVERED, and IN_FLIGHT is entered only from the queue.
func TestTransitionTableShape(t *testing.T) {
	for _, from := range []meta.State{"UNDISCOVERED", "PENDING", "IN_FLIGHT", "DONE", "FAILED", "RETRYING", "DEAD", "LATE", "REPROCESSING"} {
		if meta.CanTransition(from, "UNDISCOVERED") {
			t.Errorf("%s -> UNDISCOVERED is allowed", from)
		}
	}
	got := meta.AllowedFrom("IN_FLIGHT")
	want := []meta.State{"PENDING", "RETRYING", "REPROCESSING"}
	if len(got) != len(want) {
		t.Fatalf("AllowedFrom(IN_FLIGHT) = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] || meta.Queued()[i] != want[i] {
			t.Fatalf("AllowedFrom(IN_FLIGHT) = %v, Queued() = %v, want %v", got, meta.Queued(), want)
		}
	}
}

// TestCommittedChangesSurviveCancellation: a claim, a transition and a
// rescue whose context is cancelled right after their transaction commits
// still return what they committed, so that the caller knows it owns the
// partition (a claim answered with an error would stay IN_FLIGHT, owned by
// nobody, until its lease expired).
func TestCommittedChangesSurviveCancellation(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "medallion.db") },
		"postgres": func(t *testing.T) string { return testenv.PostgresSchema(t) },
	} {
		t.Run(name, func(t *testing.T) {
			s := open(t, url(t))
			k := medtype.PartitionKey{Domain: "events", Date: medtype.MustDate("2024-03-01")}
			t0 := time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC)
			if _, err := s.Discover(context.Background(), k, []string{"a"}, "h1", "run-1", t0); err != nil {
				t.Fatal(err)
			}
			cancelled := func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				meta.AfterCommit(s, cancel)
				return ctx
			}
			claimed, err := s.Claim(cancelled(), meta.ClaimParams{Worker: "w1", RunID: "run-1", LeaseTTL: time.Minute, Limit: 1, Now: t0})
			if err != nil || len(claimed) != 1 || claimed[0].Status != medtype.StateInFlight || claimed[0].LeasedBy != "w1" {
				t.Fatalf("claim cancelled after its commit: %+v %v", claimed, err)
			}
			p, err := s.Transition(cancelled(), k, medtype.StateFailed, meta.Update{Worker: "w1", Attempt: claimed[0].Attempts, Error: "x", Now: t0})
			if err != nil || p.Status != medtype.StateFailed {
				t.Fatalf("transition cancelled after its commit: %s %v", p.Status, err)
			}
			meta.AfterCommit(s, nil)
			if _, err := s.Transition(context.Background(), k, medtype.StateRetrying, meta.Update{Now: t0}); err != nil {
				t.Fatal(err)
			}
			again, err := s.Claim(context.Background(), meta.ClaimParams{Worker: "w2", RunID: "run-2", LeaseTTL: time.Second, Limit: 1, Now: t0})
			if err != nil || len(again) != 1 {
				t.Fatalf("claim again: %v %v", again, err)
			}
			rescued, err := s.RescueExpired(cancelled(), "run-3", t0.Add(time.Hour))
			if err != nil || len(rescued) != 1 || rescued[0].Status != medtype.StateFailed {
				t.Fatalf("rescue cancelled after its commit: %+v %v", rescued, err)
			}
		})
	}
}

package meta_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/medallionlake/medallion/internal/testenv"
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

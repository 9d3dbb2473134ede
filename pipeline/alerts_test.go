package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/medallionlake/medallion/alert"
	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/storage"
)

// TestRunAlerts: runs alert a real webhook server once per partition and
// cause, across runs: a failure, its SLA, its DEAD end, late data; and
// every run that could not finish.
func TestRunAlerts(t *testing.T) {
	var (
		mu  sync.Mutex
		got = map[string]int{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Text      string        `json:"text"`
			Medallion alert.Message `json:"medallion"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Text == "" {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got[string(body.Medallion.Cause)+" "+body.Medallion.Partition]++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	expect := func(step string, want map[string]int) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for k, n := range want {
			if got[k] != n {
				t.Fatalf("%s: %d alerts %q, want %d (all: %v)", step, got[k], k, n, got)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: alerts %v, want %v", step, got, want)
		}
	}

	reg, fsys, cfg := paymentsDomain(t)
	cfg.SLA = 6 * time.Hour
	good := fsys["gold/payments_daily.sql"].Data
	fsys["gold/payments_daily.sql"] = &fstest.MapFile{Data: []byte(strings.Replace(string(good), "FROM silver_payments",
		"FROM silver_payments WHERE CASE WHEN payment_date = DATE '2024-01-16' THEN error('ledger mismatch') ELSE true END", 1))}
	e := newEnv(t, "sqlite+local", reg, []config.Domain{cfg})
	e.deps.Now = func() time.Time { return time.Date(2024, 1, 18, 12, 0, 0, 0, time.UTC) }
	e.deps.Alerts = alert.New(e.deps.Store, slog.New(slog.NewTextHandler(io.Discard, nil)), 10*time.Second, &alert.Webhook{URL: srv.URL})
	for i, d := range []string{"2024-01-15", "2024-01-16", "2024-01-17"} {
		writePayments(t, e, d, 20, int64(i*100))
	}

	e.run(t, pipeline.Options{})
	expect("the first run", map[string]int{"failed payments/2024-01-16": 1, "sla payments/2024-01-16": 1})
	for runs := 1; e.state(t, "payments", "2024-01-16").Status != medtype.StateDead; runs++ {
		if runs > 10 {
			t.Fatal("the partition never went DEAD")
		}
		e.run(t, pipeline.Options{})
	}
	expect("after it went DEAD", map[string]int{"failed payments/2024-01-16": 1, "sla payments/2024-01-16": 1, "dead payments/2024-01-16": 1})

	writePayments(t, e, "2024-01-15", 5, 900) // a late file
	e.run(t, pipeline.Options{})
	all := map[string]int{"failed payments/2024-01-16": 1, "sla payments/2024-01-16": 1, "dead payments/2024-01-16": 1, "late payments/2024-01-15": 1}
	expect("after late data", all)

	// Runs that cannot finish (bronze cannot be listed) alert each time.
	broken := e.deps
	broken.Bucket = unlistable{e.deps.Bucket}
	for i := 1; i <= 2; i++ {
		if _, err := pipeline.Run(context.Background(), broken, pipeline.Options{}); err == nil {
			t.Fatal("a run that cannot list bronze succeeded")
		}
		all["run_failed "] = i
		expect("after a run that could not list bronze", all)
	}
}

// unlistable is storage whose listings fail.
type unlistable struct{ storage.Bucket }

func (unlistable) ListAfter(context.Context, string, string) iter.Seq2[storage.Object, error] {
	return func(yield func(storage.Object, error) bool) { yield(storage.Object{}, errors.New("503 Slow Down")) }
}

func (u unlistable) List(ctx context.Context, prefix string) iter.Seq2[storage.Object, error] {
	return u.ListAfter(ctx, prefix, "")
}

func (unlistable) Folders(context.Context, string) ([]string, error) {
	return nil, errors.New("503 Slow Down")
}

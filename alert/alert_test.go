package alert_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medallionlake/medallion/alert"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
)

// hook is a webhook receiver: a real HTTP server that records the
// alerts' causes and partitions, and fails while down is set.
type hook struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []string
	down    bool
	refused int
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.down {
			h.refused++
			http.Error(w, "channel_is_archived", http.StatusInternalServerError)
			return
		}
		var body struct {
			Text      string `json:"text"`
			Medallion struct {
				Cause     string `json:"cause"`
				Partition string `json:"partition"`
			} `json:"medallion"`
		}
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &body); err != nil || body.Text == "" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		h.got = append(h.got, body.Medallion.Cause+" "+body.Medallion.Partition)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) alerts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// TestAlertsOncePerPartitionAndCause: alerts reach a real webhook server
// and a Kafka topic (read back with kcat), once per partition and cause;
// an alert no sink took is sent again by the next notification.
func TestAlertsOncePerPartitionAndCause(t *testing.T) {
	ctx := context.Background()
	store, err := meta.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "medallion.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed (.ci/ensure-clients installs it)")
	}
	k := testenv.StartKfake(t, testenv.Build(t, "internal/kfakeserver"), "-port", "0", "-partitions", "1")
	h := newHook(t)
	topic := alert.NewTopic([]string{k.Addr}, "pipeline-alerts", nil)
	t.Cleanup(func() { topic.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := alert.New(store, log, 10*time.Second, &alert.Webhook{URL: h.srv.URL + "/services/T0/B0/secret"}, topic)

	orders := medtype.PartitionKey{Domain: "orders", Date: medtype.MustDate("2024-01-16")}
	users := medtype.PartitionKey{Domain: "users", Date: medtype.MustDate("2024-01-16")}
	for _, a := range []alert.Alert{
		{Cause: alert.Failed, Key: orders, Text: "orders/2024-01-16 failed"},
		{Cause: alert.Failed, Key: orders, Text: "orders/2024-01-16 failed again"}, // the same incident
		{Cause: alert.Dead, Key: orders, Text: "orders/2024-01-16 is DEAD"},
		{Cause: alert.PastSLA, Key: users, Text: "users/2024-01-16 is past its SLA"},
		{Cause: alert.PastSLA, Key: users, Text: "users/2024-01-16 is still past its SLA"},
		{Cause: alert.RunFailed, RunID: "r1", Text: "run r1 failed"},
		{Cause: alert.RunFailed, RunID: "r2", Text: "run r2 failed"},
	} {
		n.Notify(ctx, a)
	}
	want := []string{"failed orders/2024-01-16", "dead orders/2024-01-16", "sla users/2024-01-16", "run_failed ", "run_failed "}
	if got := h.alerts(); !slices.Equal(got, want) {
		t.Fatalf("the webhook received %q, want %q", got, want)
	}

	// Nobody took it: a later notification sends it again. While the
	// sink is paused after a failure, alerts skip it instead of waiting.
	h.mu.Lock()
	h.down = true
	h.mu.Unlock()
	down := alert.New(store, log, 10*time.Second, &alert.Webhook{URL: h.srv.URL})
	down.Pause = time.Hour
	late := alert.Alert{Cause: alert.Late, Key: users, Text: "users/2024-01-16 changed"}
	down.Notify(ctx, late)
	h.mu.Lock()
	h.down = false
	h.mu.Unlock()
	down.Notify(ctx, late) // paused: not sent, still owed
	if got := h.alerts(); len(got) != len(want) {
		t.Fatalf("a paused sink received %q", got[len(want):])
	}
	up := alert.New(store, log, 10*time.Second, &alert.Webhook{URL: h.srv.URL}) // the next run
	up.Notify(ctx, late)
	up.Notify(ctx, late)
	if got := h.alerts(); len(got) != len(want)+1 || got[len(got)-1] != "late users/2024-01-16" {
		t.Fatalf("after an undelivered alert the webhook received %q", got)
	}
	h.mu.Lock()
	if h.refused != 1 {
		t.Fatalf("the webhook was tried %d times while down, want once", h.refused)
	}
	h.mu.Unlock()

	out, err := exec.Command(kcat, "-b", k.Addr, "-t", "pipeline-alerts", "-C", "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	var keys []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		key, value, _ := strings.Cut(line, "\t")
		var a alert.Message
		if err := json.Unmarshal([]byte(value), &a); err != nil || a.Text == "" || (a.Cause != alert.RunFailed && a.Partition != a.Domain+"/"+a.Date) {
			t.Fatalf("a message of pipeline-alerts is not an alert: %q (%v)", line, err)
		}
		keys = append(keys, key)
	}
	wantKeys := []string{"orders/2024-01-16/failed", "orders/2024-01-16/dead", "users/2024-01-16/sla", "run_failed", "run_failed"}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("pipeline-alerts holds %q, want %q", keys, wantKeys)
	}
}

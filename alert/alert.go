// Package alert tells people when the pipeline needs them: a partition
// DEAD, failed, past its SLA or reprocessed for late data, and a run that
// failed. An alert goes to every configured sink (a Slack-compatible
// webhook, a Kafka topic) once per partition and cause: the meta store
// records what was sent, so a partition failing in every hourly run
// alerts once, and again only after it was DONE in between.
package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
)

// Cause is why an alert fires.
type Cause string

const (
	// Failed: a partition failed (not by an interruption); it is retried.
	Failed Cause = "failed"
	// Dead: a partition failed after its last retry and waits for a backfill.
	Dead Cause = "dead"
	// PastSLA: a partition is not DONE by its domain's sla.
	PastSLA Cause = "sla"
	// Late: a DONE partition's bronze changed and it is reprocessed.
	Late Cause = "late"
	// RunFailed: a run or worker stopped with an error (not an
	// interruption). It has no partition, and fires for every such run.
	RunFailed Cause = "run_failed"
)

// Alert is one thing to tell.
type Alert struct {
	Cause Cause
	Key   medtype.PartitionKey // zero for RunFailed
	// State is the partition's state when the alert fired.
	State medtype.PartitionState
	RunID string
	// Text is the whole message, for people.
	Text string
	At   time.Time
}

// Message is an alert as the sinks carry it, in JSON.
type Message struct {
	Cause     Cause     `json:"cause"`
	Partition string    `json:"partition,omitempty"` // domain/date
	Domain    string    `json:"domain,omitempty"`
	Date      string    `json:"date,omitempty"`
	State     string    `json:"state,omitempty"`
	RunID     string    `json:"run_id,omitempty"`
	Text      string    `json:"text"`
	At        time.Time `json:"at"`
}

func (a Alert) message() Message {
	m := Message{Cause: a.Cause, State: string(a.State), RunID: a.RunID, Text: a.Text, At: a.At}
	if !a.Key.Date.IsZero() {
		m.Partition, m.Domain, m.Date = a.Key.String(), a.Key.Domain, a.Key.Date.String()
	}
	return m
}

// Sender delivers alerts to one sink.
type Sender interface {
	Name() string
	Send(ctx context.Context, a Alert) error
}

// Notifier sends alerts once per partition and cause to its senders.
type Notifier struct {
	store   meta.Store
	senders []Sender
	timeout time.Duration
	log     *slog.Logger
	// Pause is how long a sink that failed is skipped (default a minute),
	// so that a webhook or broker that is down costs a run one timeout,
	// not one per alert. What it misses is sent again by a later run.
	Pause time.Duration
	mu    sync.Mutex
	down  map[int]time.Time // sender index -> skipped until
}

// New is a notifier over senders; with none, Notify does nothing.
func New(store meta.Store, log *slog.Logger, timeout time.Duration, senders ...Sender) *Notifier {
	return &Notifier{store: store, senders: senders, timeout: timeout, log: log}
}

// Notify sends a unless an alert of its partition and cause was sent since
// the partition was last DONE. A delivery that failed at every sink is
// taken back, so the next run sends it again; Notify never fails the
// pipeline, it logs what it could not send.
func (n *Notifier) Notify(ctx context.Context, a Alert) {
	if n == nil || len(n.senders) == 0 {
		return
	}
	if a.At.IsZero() {
		a.At = time.Now()
	}
	a.At = a.At.UTC()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.timeout)
	defer cancel()
	once := a.Cause != RunFailed
	if once {
		send, err := n.store.AlertOnce(ctx, a.Key, string(a.Cause), a.At)
		if err != nil {
			n.log.Error("could not record an alert; not sending it", "cause", a.Cause, "partition", a.Key, "error", err)
			return
		}
		if !send {
			return
		}
	}
	var errs []error
	for i, s := range n.senders {
		if err := n.send(ctx, i, s, a); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
	}
	if len(errs) == 0 {
		return
	}
	n.log.Error("could not deliver an alert", "cause", a.Cause, "partition", a.Key, "error", errors.Join(errs...))
	if once && len(errs) == len(n.senders) {
		if err := n.store.ForgetAlert(ctx, a.Key, string(a.Cause), a.At); err != nil {
			n.log.Error("could not take back an undelivered alert; it will not be sent again", "partition", a.Key, "error", err)
		}
	}
}

// errPaused is a send skipped because the sink failed a moment ago.
var errPaused = errors.New("skipped: it failed less than alerts' pause ago")

// send delivers a to the i-th sender unless it is paused, and pauses it
// when it fails.
func (n *Notifier) send(ctx context.Context, i int, s Sender, a Alert) error {
	n.mu.Lock()
	until := n.down[i]
	n.mu.Unlock()
	if time.Now().Before(until) {
		return errPaused
	}
	err := s.Send(ctx, a)
	if err != nil {
		pause := n.Pause
		if pause <= 0 {
			pause = time.Minute
		}
		n.mu.Lock()
		if n.down == nil {
			n.down = map[int]time.Time{}
		}
		n.down[i] = time.Now().Add(pause)
		n.mu.Unlock()
	}
	return err
}

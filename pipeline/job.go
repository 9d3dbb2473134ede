package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/medallionlake/medallion/alert"
	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/domains"
	"github.com/medallionlake/medallion/gold"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/silver"
)

// processOne runs silver then gold for a leased partition and records DONE
// or FAILED. It returns the bronze rows processed.
func (r *runner) processOne(ctx context.Context, p meta.Partition) int64 {
	start := time.Now()
	d := r.domain(p.Key.Domain)
	ds := r.byDomain[p.Key.Domain]
	log := r.log.With("partition", p.Key, "attempt", p.Attempts)
	log.Debug("processing partition")

	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopBeat := r.heartbeat(jobCtx, cancel, p)
	out, err := r.runJob(jobCtx, d, p)
	stopBeat()
	if cause := context.Cause(jobCtx); err != nil && errors.Is(cause, meta.ErrLeaseLost) {
		err = cause
	}

	r.mu.Lock()
	ds.Processed++
	r.mu.Unlock()
	dur := time.Since(start).Milliseconds()
	// Record the outcome even if the run is being cancelled.
	recordCtx, cancelRecord := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelRecord()
	if err != nil {
		if errors.Is(err, meta.ErrLeaseLost) {
			if msg, released := r.release(recordCtx, p, err); released {
				r.mu.Lock()
				ds.Failed++
				r.sum.Failures[p.Key.String()] = msg
				r.mu.Unlock()
			}
			return 0
		}
		msg, interrupted := err.Error(), ctx.Err() != nil
		if interrupted {
			msg = "interrupted: " + msg
		}
		_, terr := r.deps.Store.Transition(recordCtx, p.Key, medtype.StateFailed, meta.Update{
			RunID: r.sum.RunID, Worker: r.worker, Attempt: p.Attempts, Error: msg, Interrupted: interrupted, DurationMS: &dur, Now: r.deps.now(),
		})
		if terr != nil {
			log.Error("could not record failure", "error", terr)
		}
		log.Error("partition failed", "error", err)
		if !interrupted {
			r.deps.Alerts.Notify(ctx, alert.Alert{Cause: alert.Failed, Key: p.Key, State: medtype.StateFailed, RunID: r.sum.RunID, At: r.deps.now(),
				Text: fmt.Sprintf("%s failed (attempt %d, %d of %d retries used): %s", p.Key, p.Attempts, p.RetryCount, d.RetryLimit(r.deps.Config.Pipeline), truncate(msg, 500))})
		}
		r.mu.Lock()
		ds.Failed++
		r.sum.Failures[p.Key.String()] = msg
		r.mu.Unlock()
		return 0
	}
	_, err = r.deps.Store.Transition(recordCtx, p.Key, medtype.StateDone, meta.Update{
		RunID: r.sum.RunID, Worker: r.worker, Attempt: p.Attempts,
		RecordCount: &out.bronze, SilverRecords: &out.silver, GoldRecords: &out.gold,
		SourceFiles: out.files, FileHash: &out.hash, Snapshots: out.snapshots,
		SilverPath: &out.silverPath, GoldPath: &out.goldPath, DurationMS: &dur, Now: r.deps.now(),
		Message: fmt.Sprintf("%d bronze rows, %d silver, %d quarantined, %d gold", out.bronze, out.silver, out.quarantined, out.gold),
	})
	if err != nil {
		log.Error("could not record DONE; the partition will be retried", "error", err)
		r.mu.Lock()
		ds.Failed++
		r.sum.Failures[p.Key.String()] = err.Error()
		r.mu.Unlock()
		return 0
	}
	log.Info("partition done", "bronze", out.bronze, "silver", out.silver, "quarantined", out.quarantined, "gold", out.gold, "ms", dur)
	r.mu.Lock()
	ds.Done++
	ds.Rows += out.bronze
	r.mu.Unlock()
	return out.bronze
}

// release gives back a partition whose commit its lease fence refused.
// If the lease only expired (a stall: the worker was stopped, starved or
// slow to heartbeat) and nobody rescued it yet, the partition is still
// ours by name and attempt: it goes FAILED as an interruption, retried by
// the next run without counting. If it was rescued, another worker owns it.
func (r *runner) release(ctx context.Context, p meta.Partition, cause error) (msg string, released bool) {
	log := r.log.With("partition", p.Key, "attempt", p.Attempts)
	msg = "interrupted: the lease expired before the partition was committed: " + cause.Error()
	_, err := r.deps.Store.Transition(ctx, p.Key, medtype.StateFailed, meta.Update{
		RunID: r.sum.RunID, Worker: r.worker, Attempt: p.Attempts, Interrupted: true, Error: msg, Now: r.deps.now(),
	})
	if err != nil {
		log.Error("lost the lease while processing; another worker owns the partition now", "error", cause)
		return "", false
	}
	log.Error("the lease expired while processing; nothing was committed, and the next run retries the partition", "error", cause)
	return msg, true
}

func (r *runner) domain(name string) domains.Domain {
	i := slices.IndexFunc(r.doms, func(d domains.Domain) bool { return d.Name == name })
	return r.doms[i]
}

// heartbeat renews the lease every third of its TTL; losing it cancels the
// job so a rescued partition is never committed twice.
func (r *runner) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, p meta.Partition) (stop func()) {
	ttl := r.deps.Config.Pipeline.LeaseTTL
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				err := r.deps.Store.Heartbeat(ctx, p.Key, r.worker, p.Attempts, ttl, r.deps.now())
				if errors.Is(err, meta.ErrLeaseLost) {
					cancel(err)
					return
				}
				if err != nil && ctx.Err() == nil {
					r.log.Warn("heartbeat failed; will retry", "partition", p.Key, "error", err)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

type jobOutput struct {
	bronze, silver, quarantined, gold int64
	files                             []string
	hash                              string
	snapshots                         map[string]int64
	silverPath, goldPath              string
}

// runJob lists the partition's bronze files (the hash recorded as DONE is of
// exactly these), then runs silver and gold on one DuckDB connection.
func (r *runner) runJob(ctx context.Context, d domains.Domain, p meta.Partition) (jobOutput, error) {
	var out jobOutput
	key := p.Key
	part, err := bronze.ListPartition(ctx, r.deps.Bucket, d.Name, d.PartitionKey, key.Date)
	if err != nil {
		return out, err
	}
	out.files, out.hash = part.Keys(), part.Hash()
	conn, err := r.deps.Duck.Conn(ctx)
	if err != nil {
		return out, fmt.Errorf("duckdb connection: %w", err)
	}
	defer conn.Close()
	stage, err := r.deps.Duck.StageDir("job-")
	if err != nil {
		return out, err
	}
	defer os.RemoveAll(stage)

	// Every commit of the job is fenced by its lease.
	l := r.deps.Lake.Leased(r.deps.Store, meta.Lease{Key: key, Worker: r.worker, Attempt: p.Attempts}, r.deps.Now)
	if r.opts.Force {
		l = l.Forcing()
	}
	sres, err := silver.Run(ctx, conn, silver.Env{Bucket: r.deps.Bucket, Lake: l}, d, key.Date, out.files, stage)
	if err != nil {
		return out, fmt.Errorf("silver: %w", err)
	}
	gres, err := gold.Run(ctx, conn, l, r.deps.Exporter, d, key.Date, stage)
	if err != nil {
		return out, fmt.Errorf("gold: %w", err)
	}
	out.bronze, out.silver, out.quarantined, out.gold = sres.BronzeRecords, sres.SilverRecords, sres.Quarantined, gres.GoldRecords
	out.snapshots = map[string]int64{}
	for t, c := range sres.Commits {
		out.snapshots[t] = c.SnapshotID
	}
	for t, c := range gres.Commits {
		out.snapshots[t] = c.SnapshotID
	}
	out.silverPath = r.deps.Bucket.URI("warehouse/silver/" + d.Name)
	if len(d.Gold) > 0 {
		out.goldPath = r.deps.Bucket.URI("warehouse/gold/" + d.Gold[0].Table)
	}
	return out, nil
}

// truncate shortens s to n bytes for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

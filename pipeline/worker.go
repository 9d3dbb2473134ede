package pipeline

import (
	"context"
	"errors"
	"time"
)

// ErrSingleMachine means a worker was started on the SQLite meta store,
// which lives on one machine's disk: its runs process the queue themselves.
var ErrSingleMachine = errors.New("medallion worker needs the PostgreSQL meta store (meta.url: postgres://...): " +
	"the SQLite store is on one machine, where `medallion run --workers N` processes partitions in parallel")

// WorkOptions select what a worker does.
type WorkOptions struct {
	// Workers is the number of partitions processed at once (default
	// pipeline.workers).
	Workers int
	// Domains limits the worker; empty means all configured domains.
	Domains []string
	// Follow keeps the worker waiting for work until ctx ends: woken by
	// the NOTIFY of a run that queued partitions, and checking the queue
	// every Poll anyway. Without it the worker drains the queue and
	// returns (a Kubernetes Job's pods).
	Follow bool
	Poll   time.Duration
}

// DefaultPoll is how often a following worker checks an empty queue.
const DefaultPoll = 10 * time.Second

// Work claims queued partitions and processes them, as a run does, until
// the queue is empty (or, with Follow, until ctx ends). It takes no lock:
// any number of workers on any number of machines share one PostgreSQL
// meta store and one object store. Each commit is fenced by its lease, so
// a worker that stalls past its lease commits nothing. Discovery, late
// data, requeueing and lease rescue stay in `run` (run --no-process feeds
// workers); a partition that fails waits as FAILED for the next run.
func Work(ctx context.Context, deps Deps, opts WorkOptions) (Summary, error) {
	begin := time.Now()
	if deps.Store.Kind() != "postgres" {
		return Summary{}, ErrSingleMachine
	}
	if opts.Workers <= 0 {
		opts.Workers = deps.Config.Pipeline.Workers
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	doms, err := selectDomains(deps.Domains, opts.Domains)
	if err != nil {
		return Summary{}, err
	}
	r, err := start(ctx, deps, Options{Command: "worker", Workers: opts.Workers, Domains: opts.Domains}, doms)
	if err != nil {
		return r.sum, err
	}
	r.log.Info("worker started", "worker", r.worker, "parallel", opts.Workers, "follow", opts.Follow)
	err = r.work(ctx, opts)
	if err == nil {
		err = r.countUnhealthy(ctx)
	}
	r.sum.Duration = time.Since(begin)
	r.finish(err)
	return r.sum, err
}

// work drains the queue, then, when following, waits and drains again.
func (r *runner) work(ctx context.Context, opts WorkOptions) error {
	for {
		if err := r.process(ctx); err != nil {
			return err
		}
		if !opts.Follow {
			return nil
		}
		if err := r.deps.Store.WaitForWork(ctx, opts.Poll); err != nil {
			return err
		}
	}
}

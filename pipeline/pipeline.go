// Package pipeline is the orchestrator behind `medallion run` and
// `medallion backfill`: take the overlap lock, rescue expired leases,
// discover bronze partitions and detect late data, queue work, run workers
// (each partition leased, then silver, then gold, then DONE or FAILED), and
// report.
package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medallionlake/medallion/alert"
	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/domains"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/gold"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/sla"
	"github.com/medallionlake/medallion/storage"
)

// LockName is the overlap lock every run and backfill takes.
const LockName = "run"

// ErrOverlap means another run or backfill holds the lock. The caller exits
// at once; the other run will do the work.
var ErrOverlap = errors.New("another medallion run or backfill is in progress")

// Deps are the opened resources a run uses.
type Deps struct {
	Config *config.Config
	Store  meta.Store
	Bucket storage.Bucket
	Lake   *lake.Lake
	Duck   *duck.DB
	// Exporter, if set, mirrors gold tables marked export: true.
	Exporter *gold.Exporter
	// Alerts, if set, is told of partitions DEAD, failed, past their SLA
	// or late, and of runs that could not finish.
	Alerts  *alert.Notifier
	Domains []domains.Domain
	Log     *slog.Logger
	// Progress, if set, receives a live progress line (a terminal).
	Progress io.Writer
	// Now pins the clock (tests); nil is time.Now.
	Now func() time.Time
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Options select what a run does.
type Options struct {
	// Command names the run in the run log: "run" or "backfill".
	Command string
	// Workers is the number of partitions processed at once (default from
	// pipeline.workers).
	Workers int
	// Domains limits the run; empty means all configured domains.
	Domains []string
	// From and To limit the partition dates (inclusive); zero is unbounded.
	From, To medtype.Date
	// Reprocess (backfill) resets matching partitions to PENDING first:
	// "all" (every state but IN_FLIGHT) or "failed" (FAILED, RETRYING, DEAD).
	Reprocess string
	// DryRun (backfill) only reports what would run.
	DryRun bool
	// Force (backfill) rewrites every table partition the run touches,
	// even one that already holds exactly its rows (lake.Lake.Forcing).
	Force bool
	// Rebuild (backfill --rebuild) empties this table as a new version
	// whose schema its next write sets (lake.Lake.Rebuild) before the
	// partitions are reset; Domains must be the one domain that writes it,
	// and From and To are zero, so that every partition rebuilds it.
	Rebuild *lake.TableID
	// FullListing (run --full-listing) lists all of bronze, as if
	// bronze.listing.full_every had passed.
	FullListing bool
	// NoProcess (run --no-process) does everything but process the queue:
	// rescue, discovery, late data and requeueing, for worker processes
	// (medallion worker) to drain.
	NoProcess bool
}

// DomainSummary counts one domain's outcome.
type DomainSummary struct {
	Domain     string `json:"domain"`
	Discovered int    `json:"discovered"`
	New        int    `json:"new"`
	Late       int    `json:"late"`
	Reset      int    `json:"reset"`
	Processed  int    `json:"processed"`
	Done       int    `json:"done"`
	Failed     int    `json:"failed"`
	Dead       int    `json:"dead"`
	// Unhealthy counts this domain's FAILED and DEAD partitions in the store
	// after the run (within the run's date range).
	Unhealthy int   `json:"unhealthy"`
	Rows      int64 `json:"rows"`
	// Queued counts, after a run --no-process, the partitions left in the
	// queue for workers.
	Queued int `json:"queued,omitempty"`
	// ListedSince is the first partition date the run listed, when it
	// listed only the recent ones (bronze.listing); "" when it listed all.
	ListedSince string `json:"listed_since,omitempty"`
}

// Summary is a run's report.
type Summary struct {
	RunID    string           `json:"run_id"`
	Command  string           `json:"command"`
	Duration time.Duration    `json:"duration_ns"`
	Domains  []*DomainSummary `json:"domains"`
	// Planned is, for a dry run, what would be processed.
	Planned []meta.Partition `json:"planned,omitempty"`
	// Missing lists requested dates with no bronze data (backfill).
	Missing []medtype.PartitionKey `json:"missing,omitempty"`
	// ArchivedLate lists archived partitions whose bronze gained files,
	// which are not processed (see ApplyRetention).
	ArchivedLate []medtype.PartitionKey `json:"archived_late,omitempty"`
	// PastSLA lists the partitions of the run's domains past their SLA
	// after the run (sla.Check).
	PastSLA []sla.Miss `json:"past_sla,omitempty"`
	// Failures holds the error of each partition that failed in this run.
	Failures map[string]string `json:"failures,omitempty"`
}

// Healthy reports whether nothing failed and nothing is dead.
func (s Summary) Healthy() bool {
	for _, d := range s.Domains {
		if d.Failed > 0 || d.Dead > 0 || d.Unhealthy > 0 {
			return false
		}
	}
	return true
}

// Run executes one run (or backfill) to completion.
func Run(ctx context.Context, deps Deps, opts Options) (Summary, error) {
	begin := time.Now()
	if opts.Command == "" {
		opts.Command = "run"
	}
	if opts.Workers <= 0 {
		opts.Workers = deps.Config.Pipeline.Workers
	}
	doms, err := selectDomains(deps.Domains, opts.Domains)
	if err != nil {
		return Summary{}, err
	}
	release, err := deps.Store.TryLock(ctx, LockName)
	if errors.Is(err, meta.ErrLocked) {
		return Summary{}, fmt.Errorf("%w (lock %q in the meta store); exiting", ErrOverlap, LockName)
	}
	if err != nil {
		return Summary{}, err
	}
	defer release()

	r, err := start(ctx, deps, opts, doms)
	if err != nil {
		return r.sum, err
	}
	err = r.execute(ctx)
	r.sum.Duration = time.Since(begin)
	if !opts.DryRun {
		r.finish(err)
	}
	return r.sum, err
}

// start makes the runner of a run, backfill or worker and records it in
// the run log (not for a dry run). Its worker id (host, pid, run) is what
// its leases are held by.
func start(ctx context.Context, deps Deps, opts Options, doms []domains.Domain) (*runner, error) {
	r := &runner{deps: deps, opts: opts, doms: doms, log: deps.Log}
	r.sum = Summary{RunID: newRunID(deps.now()), Command: opts.Command, Failures: map[string]string{}}
	r.byDomain = map[string]*DomainSummary{}
	for _, d := range doms {
		ds := &DomainSummary{Domain: d.Name}
		r.byDomain[d.Name] = ds
		r.sum.Domains = append(r.sum.Domains, ds)
	}
	host, _ := os.Hostname()
	r.worker = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), r.sum.RunID[len(r.sum.RunID)-6:])
	if opts.DryRun {
		return r, nil
	}
	return r, deps.Store.StartRun(ctx, meta.Run{ID: r.sum.RunID, Command: opts.Command, Host: host, PID: os.Getpid(), StartedAt: deps.now()})
}

type runner struct {
	deps     Deps
	opts     Options
	doms     []domains.Domain
	log      *slog.Logger
	worker   string
	mu       sync.Mutex
	sum      Summary
	byDomain map[string]*DomainSummary
}

func (r *runner) execute(ctx context.Context) error {
	now := r.deps.now()
	if !r.opts.DryRun {
		rescued, err := r.deps.Store.RescueExpired(ctx, r.sum.RunID, now)
		if err != nil {
			return err
		}
		for _, p := range rescued {
			r.log.Warn("rescued partition from an expired lease", "partition", p.Key, "error", p.ErrorMessage)
		}
	}
	for _, d := range r.doms {
		if err := r.discover(ctx, d); err != nil {
			return err
		}
	}
	if r.opts.Rebuild != nil && !r.opts.DryRun {
		if err := r.rebuild(ctx); err != nil {
			return err
		}
	}
	if r.opts.Reprocess != "" {
		if err := r.reset(ctx); err != nil {
			return err
		}
	}
	if r.opts.DryRun {
		return nil
	}
	for _, d := range r.doms {
		res, err := r.deps.Store.Requeue(ctx, d.Name, d.RetryLimit(r.deps.Config.Pipeline), r.sum.RunID, r.deps.now())
		if err != nil {
			return err
		}
		for _, k := range res.Dead {
			r.log.Error("partition is DEAD after its last retry; run `medallion backfill` once the cause is fixed", "partition", k)
			r.byDomain[k.Domain].Dead++
			r.deps.Alerts.Notify(ctx, alert.Alert{Cause: alert.Dead, Key: k, State: medtype.StateDead, RunID: r.sum.RunID, At: r.deps.now(),
				Text: fmt.Sprintf("%s is DEAD after %d retries; fix the cause, then `medallion backfill --domain %s --from %s --to %s --reprocess failed`.",
					k, d.RetryLimit(r.deps.Config.Pipeline), k.Domain, k.Date, k.Date)})
		}
	}
	// Wake the workers that follow the queue (medallion worker --follow).
	if err := r.deps.Store.NotifyWork(ctx); err != nil {
		r.log.Warn("could not notify workers; they find the queue at their next poll", "error", err)
	}
	if r.opts.NoProcess {
		if err := r.countQueued(ctx); err != nil {
			return err
		}
	} else if err := r.process(ctx); err != nil {
		return err
	}
	if err := r.countUnhealthy(ctx); err != nil {
		return err
	}
	return r.checkSLA(ctx)
}

// checkSLA records the partitions past their SLA, and warns of them.
func (r *runner) checkSLA(ctx context.Context) error {
	doms := make([]config.Domain, len(r.doms))
	for i, d := range r.doms {
		doms[i] = d.Domain
	}
	misses, err := sla.Check(ctx, r.deps.Store, doms, r.deps.now())
	if err != nil || len(misses) == 0 {
		return err
	}
	r.sum.PastSLA = misses
	for _, m := range misses {
		r.deps.Alerts.Notify(ctx, alert.Alert{Cause: alert.PastSLA, Key: m.Key, State: m.State, RunID: r.sum.RunID, At: r.deps.now(),
			Text: fmt.Sprintf("%s is past its SLA: due %s, %s late, now %s.", m.Key, m.Deadline.Format(time.RFC3339), m.Late.Round(time.Minute), m.State)})
	}
	r.log.Warn("partitions are past their SLA; medallion status lists them", "count", len(misses),
		"oldest", misses[0].Key, "state", misses[0].State, "late_by", misses[0].Late.Round(time.Minute))
	return nil
}

func (r *runner) filter() meta.Filter {
	f := meta.Filter{From: r.opts.From, To: r.opts.To}
	for _, d := range r.doms {
		f.Domains = append(f.Domains, d.Name)
	}
	return f
}

func (r *runner) inRange(d medtype.Date) bool {
	return (r.opts.From.IsZero() || !d.Before(r.opts.From)) && (r.opts.To.IsZero() || !r.opts.To.Before(d))
}

// discover lists a domain's bronze partitions (see listFrom) and records
// each one's file list and hash: new partitions become PENDING, DONE ones
// whose hash changed become LATE.
func (r *runner) discover(ctx context.Context, d domains.Domain) error {
	since, full, err := r.listFrom(ctx, d)
	if err != nil {
		return err
	}
	// One query for every tracked partition's hash, so that a run writes only
	// the partitions whose files changed.
	known, err := r.deps.Store.FileHashes(ctx, meta.Filter{Domains: []string{d.Name}, From: r.opts.From, To: r.opts.To})
	if err != nil {
		return err
	}
	disc, err := bronze.Discover(ctx, r.deps.Bucket, d.Name, d.PartitionKey, since)
	if err != nil {
		return err
	}
	recentOnly := !since.IsZero() && r.opts.From.IsZero()
	if recentOnly {
		older, err := r.untracked(ctx, d, since, known)
		if err != nil {
			return err
		}
		disc.Partitions = append(older, disc.Partitions...)
	}
	for _, k := range disc.Skipped {
		r.log.Warn("ignoring an object that is not a bronze file of this domain", "domain", d.Name, "key", k)
	}
	ds := r.byDomain[d.Name]
	seen := map[medtype.Date]bool{}
	for _, p := range disc.Partitions {
		if !r.inRange(p.Date) {
			continue
		}
		seen[p.Date] = true
		ds.Discovered++
		key := medtype.PartitionKey{Domain: d.Name, Date: p.Date}
		if r.opts.DryRun || known[key] == p.Hash() {
			continue // unchanged: Discover would leave it as it is
		}
		change, err := r.deps.Store.Discover(ctx, key, p.Keys(), p.Hash(), r.sum.RunID, r.deps.now())
		if err != nil {
			return err
		}
		switch {
		case change.From == medtype.StateUndiscovered:
			ds.New++
		case change.To == medtype.StateLate:
			ds.Late++
			r.deps.Alerts.Notify(ctx, alert.Alert{Cause: alert.Late, Key: key, State: medtype.StateLate, RunID: r.sum.RunID, At: r.deps.now(),
				Text: fmt.Sprintf("Late data: %s changed after it was processed (%d files added, %d removed); it is reprocessed.", key, len(change.Added), len(change.Removed))})
			r.log.Info("late data: partition changed since it was processed", "partition", key,
				"added", len(change.Added), "removed", len(change.Removed), "added_files", change.Added, "removed_files", change.Removed)
		case change.Archived && len(change.Added) > 0:
			r.sum.ArchivedLate = append(r.sum.ArchivedLate, key)
			r.log.Warn("files arrived for an archived partition and are not processed: bronze.retention deleted the files it was built from",
				"partition", key, "files", change.Added)
		}
	}
	if full && !r.opts.DryRun {
		if err := r.deps.Store.RecordFullListing(ctx, d.Name, r.deps.now()); err != nil {
			return err
		}
	}
	if recentOnly {
		ds.ListedSince = since.String()
	}
	if !r.opts.From.IsZero() && !r.opts.To.IsZero() && r.opts.Reprocess != "" {
		for day := r.opts.From; !r.opts.To.Before(day); day = day.AddDays(1) {
			if !seen[day] {
				r.sum.Missing = append(r.sum.Missing, medtype.PartitionKey{Domain: d.Name, Date: day})
			}
		}
	}
	return nil
}

// untracked lists the bronze partitions dated before since that the store
// does not track yet: a listing of recent partitions still sees a new
// partition of any date at once, from the date folders' names.
func (r *runner) untracked(ctx context.Context, d domains.Domain, since medtype.Date, known map[medtype.PartitionKey]string) ([]bronze.Partition, error) {
	dates, err := bronze.Dates(ctx, r.deps.Bucket, d.Name, d.PartitionKey)
	if err != nil {
		return nil, err
	}
	var out []bronze.Partition
	for _, day := range dates {
		if _, ok := known[medtype.PartitionKey{Domain: d.Name, Date: day}]; ok || !day.Before(since) {
			continue
		}
		p, err := bronze.ListPartition(ctx, r.deps.Bucket, d.Name, d.PartitionKey, day)
		if err != nil {
			return nil, err
		}
		if len(p.Files) > 0 {
			out = append(out, p)
		}
	}
	return out, nil
}

// listFrom is the first partition date a run lists of a domain's bronze
// (zero: all of them), and whether that is a full listing to record. A
// run over a date range lists the range; otherwise a run lists all when
// bronze.listing.full_every has passed since one last did (or it is 0,
// or the run asks), and else only the partitions dated within
// bronze.listing.recent of the newest one tracked, and any newer (and
// the untracked ones of any date).
func (r *runner) listFrom(ctx context.Context, d domains.Domain) (since medtype.Date, full bool, err error) {
	if !r.opts.From.IsZero() {
		return r.opts.From, false, nil
	}
	cfg := r.deps.Config.Bronze.Listing
	if cfg.FullEvery == 0 || r.opts.FullListing {
		return medtype.Date{}, true, nil
	}
	l, err := r.deps.Store.Listing(ctx, d.Name)
	if err != nil {
		return medtype.Date{}, false, err
	}
	// Due a tenth early, so that a daily cron with full_every 24h lists in
	// full every day whatever its start-time jitter.
	if l.Newest.IsZero() || r.deps.now().Sub(l.ListedAll) >= time.Duration(cfg.FullEvery)*9/10 {
		return medtype.Date{}, true, nil
	}
	return l.Newest.AddDays(-int(time.Duration(cfg.Recent) / time.Duration(config.Day))), false, nil
}

// reset (backfill) returns the matching partitions to PENDING; a dry run
// lists them instead.
func (r *runner) reset(ctx context.Context) error {
	states := []meta.State{medtype.StateFailed, medtype.StateRetrying, medtype.StateDead}
	if r.opts.Reprocess == "all" {
		states = append(states, medtype.StatePending, medtype.StateDone, medtype.StateLate, medtype.StateReprocessing)
	}
	f := r.filter()
	f.States = states
	parts, err := r.deps.Store.List(ctx, f)
	if err != nil {
		return err
	}
	if err := refuseArchived(parts); err != nil {
		return err
	}
	if r.opts.DryRun {
		r.sum.Planned = parts
		return r.planNew(ctx)
	}
	for _, p := range parts {
		if p.Status == medtype.StatePending {
			continue
		}
		_, err := r.deps.Store.Transition(ctx, p.Key, medtype.StatePending, meta.Update{RunID: r.sum.RunID,
			Message: fmt.Sprintf("backfill --reprocess %s (was %s)", r.opts.Reprocess, p.Status), Now: r.deps.now()})
		if errors.Is(err, meta.ErrConflict) || errors.Is(err, meta.ErrNotAllowed) {
			r.log.Warn("partition changed while resetting it; leaving it", "partition", p.Key, "error", err)
			continue
		}
		if err != nil {
			return err
		}
		r.byDomain[p.Key.Domain].Reset++
	}
	return nil
}

// rebuild empties the table being rebuilt, unless an archived partition
// could not be rebuilt into it.
func (r *runner) rebuild(ctx context.Context) error {
	parts, err := r.deps.Store.List(ctx, r.filter())
	if err != nil {
		return err
	}
	if err := refuseArchived(parts); err != nil {
		return err
	}
	n, err := r.deps.Lake.Rebuild(ctx, *r.opts.Rebuild)
	if err != nil {
		return err
	}
	r.log.Info("rebuilding a table: its files left it in a new snapshot; every partition of its domain is reprocessed",
		"table", r.opts.Rebuild, "files", n, "partitions", len(parts))
	return nil
}

// refuseArchived fails a backfill whose range holds archived partitions,
// which cannot be rebuilt: their bronze files are gone.
func refuseArchived(parts []meta.Partition) error {
	var archived []string
	for _, p := range parts {
		if !p.ArchivedAt.IsZero() {
			archived = append(archived, p.Key.String())
		}
	}
	if len(archived) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s; they keep their rows in the tables but cannot be rebuilt. Start the range after them, or use --reprocess failed",
		meta.ErrArchived, strings.Join(head(archived, 5), ", "))
}

// head is the first n items, with a count of the rest.
func head(items []string, n int) []string {
	if len(items) <= n {
		return items
	}
	return append(slices.Clone(items[:n]), fmt.Sprintf("and %d more", len(items)-n))
}

// planNew adds, for a dry run, the bronze partitions not tracked yet.
func (r *runner) planNew(ctx context.Context) error {
	for _, d := range r.doms {
		disc, err := bronze.Discover(ctx, r.deps.Bucket, d.Name, d.PartitionKey, r.opts.From)
		if err != nil {
			return err
		}
		for _, p := range disc.Partitions {
			if !r.inRange(p.Date) {
				continue
			}
			key := medtype.PartitionKey{Domain: d.Name, Date: p.Date}
			if _, err := r.deps.Store.Get(ctx, key); errors.Is(err, meta.ErrNotFound) {
				r.sum.Planned = append(r.sum.Planned, meta.Partition{Key: key, Status: medtype.StateUndiscovered, SourceFiles: p.Keys()})
			}
		}
	}
	slices.SortFunc(r.sum.Planned, func(a, b meta.Partition) int {
		if c := a.Key.Date.Time().Compare(b.Key.Date.Time()); c != 0 {
			return c
		}
		return strings.Compare(a.Key.Domain, b.Key.Domain)
	})
	return nil
}

// process runs the workers until the queue is empty.
func (r *runner) process(ctx context.Context) error {
	f := r.filter()
	f.States = meta.Queued()
	queued, err := r.deps.Store.List(ctx, f)
	if err != nil {
		return err
	}
	prog := newProgress(r.deps.Progress, len(queued))
	var (
		wg       sync.WaitGroup
		firstErr error
		errOnce  sync.Once
	)
	for w := 0; w < r.opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				claimed, err := r.deps.Store.Claim(ctx, meta.ClaimParams{
					Worker: r.worker, RunID: r.sum.RunID, LeaseTTL: r.deps.Config.Pipeline.LeaseTTL,
					Limit: 1, Filter: r.filter(), Now: r.deps.now(),
				})
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				if len(claimed) == 0 {
					return
				}
				rows := r.processOne(ctx, claimed[0])
				prog.add(rows)
			}
		}()
	}
	wg.Wait()
	prog.finish()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// countQueued counts what a run --no-process leaves for workers.
func (r *runner) countQueued(ctx context.Context) error {
	return r.count(ctx, meta.Queued(), func(d *DomainSummary) *int { return &d.Queued })
}

// countUnhealthy counts the FAILED and DEAD partitions of the run's range.
func (r *runner) countUnhealthy(ctx context.Context) error {
	return r.count(ctx, []meta.State{medtype.StateFailed, medtype.StateDead}, func(d *DomainSummary) *int { return &d.Unhealthy })
}

// count adds up, per domain, the partitions of the run's range in states.
func (r *runner) count(ctx context.Context, states []meta.State, field func(*DomainSummary) *int) error {
	f := r.filter()
	f.States = states
	parts, err := r.deps.Store.List(ctx, f)
	if err != nil {
		return err
	}
	for _, p := range parts {
		*field(r.byDomain[p.Key.Domain])++
	}
	return nil
}

func (r *runner) finish(runErr error) {
	run := meta.Run{ID: r.sum.RunID, FinishedAt: r.deps.now(), Outcome: "ok"}
	for _, d := range r.sum.Domains {
		run.Partitions += d.Processed
		run.Done += d.Done
		run.Failed += d.Failed
	}
	switch {
	case runErr != nil:
		run.Outcome, run.Error = "aborted", runErr.Error()
	case !r.sum.Healthy():
		run.Outcome = "failed"
		run.Error = fmt.Sprintf("%d partitions failed in this run", run.Failed)
	}
	// The run log is written even when the run's context was cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A run that ends with FAILED or DEAD partitions has alerted for each;
	// one that could not finish (storage or the meta store down) alerts
	// here. An interrupted one (SIGTERM) does not.
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		r.deps.Alerts.Notify(ctx, alert.Alert{Cause: alert.RunFailed, RunID: run.ID, At: run.FinishedAt,
			Text: fmt.Sprintf("medallion %s %s %s: %s", r.sum.Command, run.ID, run.Outcome, run.Error)})
	}
	if err := r.deps.Store.FinishRun(ctx, run); err != nil {
		r.log.Error("could not record the end of the run", "run", run.ID, "error", err)
	}
}

func selectDomains(all []domains.Domain, names []string) ([]domains.Domain, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []domains.Domain
	for _, n := range names {
		i := slices.IndexFunc(all, func(d domains.Domain) bool { return d.Name == n })
		if i < 0 {
			var known []string
			for _, d := range all {
				known = append(known, d.Name)
			}
			return nil, fmt.Errorf("unknown domain %q (configured: %v)", n, known)
		}
		out = append(out, all[i])
	}
	return out, nil
}

func newRunID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// progress prints "partitions done/total, rows/s" on a terminal.
type progress struct {
	w     io.Writer
	total int
	start time.Time
	done  atomic.Int64
	rows  atomic.Int64
	mu    sync.Mutex
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, start: time.Now()}
}

func (p *progress) add(rows int64) {
	n := p.done.Add(1)
	r := p.rows.Add(rows)
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	secs := time.Since(p.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(r) / secs
	}
	fmt.Fprintf(p.w, "\r%d/%d partitions  %d rows  %.0f rows/s   ", n, max(p.total, int(n)), r, rate)
}

func (p *progress) finish() {
	if p.w != nil && p.done.Load() > 0 {
		fmt.Fprintln(p.w)
	}
}

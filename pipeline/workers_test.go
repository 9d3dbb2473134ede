package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/storage/s3"
)

// workerChildEnv carries, to a child process of TestWorkerProcesses, the
// deployment it works on (a workerSpec as JSON).
const workerChildEnv = "MEDALLION_WORKER_CHILD"

// workerLeaseEnv sets the lease of the test's processes (the benchmark's:
// four workers on two cores may stall a heartbeat past 3s).
const workerLeaseEnv = "MEDALLION_WORKER_LEASE"

type workerSpec struct {
	MetaURL string
	Bucket  s3.Config
	Follow  bool
}

// workerConfig is the configuration of every process of the test: one
// partition at a time, DuckDB on one thread, a short lease (longer when
// MEDALLION_WORKER_LEASE says so).
func workerConfig(s3cfg s3.Config) *config.Config {
	cfg := config.Defaults()
	cfg.Pipeline.Workers = 1
	cfg.Pipeline.LeaseTTL = 3 * time.Second
	if d, err := time.ParseDuration(os.Getenv(workerLeaseEnv)); err == nil {
		cfg.Pipeline.LeaseTTL = d
	}
	cfg.DuckDB.Threads = 1
	cfg.Storage.S3 = config.S3{Endpoint: s3cfg.Endpoint, Region: s3cfg.Region, PathStyle: true, AccessKeyID: s3cfg.AccessKeyID, SecretAccessKey: s3cfg.SecretAccessKey}
	doms, err := config.BuiltinDomains()
	if err != nil {
		panic(err)
	}
	cfg.Domains = doms
	return &cfg
}

func openWorkerEnv(t testing.TB, metaURL string, s3cfg s3.Config) *env {
	b, err := s3.New(context.Background(), s3cfg)
	if err != nil {
		t.Fatal(err)
	}
	return newEnvOn(t, workerConfig(s3cfg), nil, metaURL, b)
}

// TestWorkerProcesses: three worker processes drain one queue on
// PostgreSQL and S3. One is SIGKILLed in the middle of a partition, one
// is SIGSTOPped past its lease and woken after another worker redid its
// partition. At the end every partition is DONE, the history shows both
// rescues, the stopped worker committed nothing once woken, and every
// gold table holds exactly the data files of a single-process run over
// the same bronze.
func TestWorkerProcesses(t *testing.T) {
	if spec := os.Getenv(workerChildEnv); spec != "" {
		runWorkerChild(t, spec)
		return
	}
	if os.Getenv(spinChildEnv) != "" {
		spin()
		return
	}
	ctx := context.Background()
	srv := testenv.StartS3(t)
	var singleCfg, multiCfg s3.Config
	singleBucket := srv.Bucket(t, "", func(c *s3.Config) { singleCfg = *c })
	multiBucket := srv.Bucket(t, "", func(c *s3.Config) { multiCfg = *c })
	single := newEnvOn(t, workerConfig(singleCfg), nil, testenv.PostgresSchema(t), singleBucket)
	multiURL := testenv.PostgresSchema(t)
	multi := newEnvOn(t, workerConfig(multiCfg), nil, multiURL, multiBucket)

	msgs, err := generate.Generate(generate.Options{Seed: 31, Start: medtype.MustDate("2024-04-01"), Days: 4, EventsPerDay: 12_000,
		Duplicates: 0.02, Malformed: 0.002, Late: 0.01})
	must(t, err)
	at := time.Date(2024, 4, 6, 0, 0, 0, 0, time.UTC)
	for _, e := range []*env{single, multi} {
		if _, err := generate.WriteBronze(ctx, e.deps.Bucket, e.cfg.Domains, msgs, false, 400, at); err != nil {
			t.Fatal(err)
		}
	}
	allDone(t, single.run(t, pipeline.Options{}))

	queued := 0
	for _, d := range multi.run(t, pipeline.Options{NoProcess: true}).Domains {
		queued += d.Queued
	}
	if queued < 12 {
		t.Fatalf("run --no-process queued %d partitions", queued)
	}
	killed := startWorker(t, multiURL, multiCfg, false)
	stopped := startWorker(t, multiURL, multiCfg, false)
	follower := startWorker(t, multiURL, multiCfg, true)

	// SIGKILL one worker in the middle of a partition.
	k0, _ := heldBy(t, multi, killed)
	must(t, killed.cmd.Process.Signal(syscall.SIGKILL))
	// SIGSTOP another until its lease has expired, been rescued by a run
	// and its partition redone by another worker.
	k1, stale := heldBy(t, multi, stopped)
	must(t, stopped.cmd.Process.Signal(syscall.SIGSTOP))
	t.Logf("killed %s in %s; stopped %s in %s", killed.id(t), k0, stale.Worker, k1)
	waitFor(t, "both leases rescued", func() bool {
		multi.run(t, pipeline.Options{NoProcess: true})
		return rescued(t, multi, k0) && rescued(t, multi, k1)
	})
	waitFor(t, "the stopped worker's partition redone", func() bool {
		p := multi.state(t, k1.Domain, k1.Date.String())
		return p.Status == medtype.StateDone && p.Attempts > stale.Attempt
	})
	woken := time.Now()
	must(t, stopped.cmd.Process.Signal(syscall.SIGCONT))
	if err := stopped.wait(2 * time.Minute); err != nil {
		t.Fatalf("the woken worker: %v\n%s", err, stopped.out)
	}
	// A worker starved past its 3s lease on a loaded machine gives its
	// partition back as FAILED; the runs a cron would start requeue it.
	lastRun := time.Now()
	waitFor(t, "every partition DONE", func() bool {
		if time.Since(lastRun) > time.Second {
			multi.run(t, pipeline.Options{NoProcess: true})
			lastRun = time.Now()
		}
		sum, err := multi.deps.Store.Summary(ctx)
		must(t, err)
		for _, c := range sum {
			if c.State != medtype.StateDone {
				return false
			}
		}
		return len(sum) > 0
	})
	must(t, follower.cmd.Process.Signal(syscall.SIGTERM))
	if err := follower.wait(time.Minute); err != nil {
		t.Fatalf("the following worker did not stop on SIGTERM: %v\n%s", err, follower.out)
	}

	parts, err := multi.deps.Store.List(ctx, meta.Filter{})
	must(t, err)
	if len(parts) != queued {
		t.Fatalf("%d partitions, %d queued", len(parts), queued)
	}
	for _, p := range parts {
		if p.Status != medtype.StateDone {
			t.Fatalf("%s is %s", p.Key, p.Status)
		}
	}
	if late := lateCommits(t, multi, stale, woken); len(late) > 0 {
		t.Fatalf("the worker woken after its lease was rescued committed %v", late)
	}
	t.Logf("the woken worker's log:\n%s", lines(stopped.out.String(), "lease"))
	for _, ns := range []string{"gold", "silver"} {
		want, got := fingerprints(t, single, ns), fingerprints(t, multi, ns)
		if len(want) == 0 {
			t.Fatalf("the single-process run wrote no %s tables", ns)
		}
		for table, files := range want {
			if !slices.Equal(got[table], files) {
				t.Errorf("%s: workers wrote %v, a single process %v", table, got[table], files)
			}
		}
	}
}

func runWorkerChild(t *testing.T, raw string) {
	var spec workerSpec
	must(t, json.Unmarshal([]byte(raw), &spec))
	e := openWorkerEnv(t, spec.MetaURL, spec.Bucket)
	e.deps.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if dir := os.Getenv("MEDALLION_WORKER_CPUPROFILE"); dir != "" { // profiles of BenchmarkWorkers' workers
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("worker-%d.pprof", os.Getpid())))
		must(t, err)
		must(t, pprof.StartCPUProfile(f))
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	sum, err := pipeline.Work(ctx, e.deps, pipeline.WorkOptions{Follow: spec.Follow, Poll: 200 * time.Millisecond})
	if err != nil && !(spec.Follow && errors.Is(err, context.Canceled)) {
		t.Fatal(err)
	}
	for k, msg := range sum.Failures {
		t.Logf("worker: %s failed: %s", k, msg)
	}
}

type worker struct {
	cmd    *exec.Cmd
	out    *strings.Builder
	exited chan error
}

func startWorker(t testing.TB, metaURL string, bucket s3.Config, follow bool) *worker {
	t.Helper()
	spec, err := json.Marshal(workerSpec{MetaURL: metaURL, Bucket: bucket, Follow: follow})
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{out: &strings.Builder{}, exited: make(chan error, 1)}
	w.cmd = exec.Command(os.Args[0], "-test.run=^TestWorkerProcesses$", "-test.v")
	w.cmd.Env = append(os.Environ(), workerChildEnv+"="+string(spec))
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.exited <- w.cmd.Wait() }()
	t.Cleanup(func() {
		_ = w.cmd.Process.Signal(syscall.SIGCONT)
		_ = w.cmd.Process.Kill()
	})
	return w
}

func (w *worker) wait(d time.Duration) error {
	select {
	case err := <-w.exited:
		return err
	case <-time.After(d):
		return fmt.Errorf("still running after %s", d)
	}
}

// id is the part of a worker id that names its process.
func (w *worker) id(t *testing.T) string { return "-" + strconv.Itoa(w.cmd.Process.Pid) + "-" }

// heldBy waits until w holds a partition in flight and returns it.
func heldBy(t *testing.T, e *env, w *worker) (medtype.PartitionKey, meta.Lease) {
	t.Helper()
	var l meta.Lease
	waitFor(t, "a partition in flight in worker "+w.id(t), func() bool {
		parts, err := e.deps.Store.List(context.Background(), meta.Filter{States: []meta.State{medtype.StateInFlight}})
		must(t, err)
		for _, p := range parts {
			if strings.Contains(p.LeasedBy, w.id(t)) {
				l = meta.Lease{Key: p.Key, Worker: p.LeasedBy, Attempt: p.Attempts}
				return true
			}
		}
		return false
	})
	return l.Key, l
}

// rescued reports whether the history shows k's lease rescued.
func rescued(t *testing.T, e *env, k medtype.PartitionKey) bool {
	events, err := e.deps.Store.History(context.Background(), k, 0)
	must(t, err)
	return slices.ContainsFunc(events, func(ev meta.Event) bool {
		return ev.From == medtype.StateInFlight && ev.To == medtype.StateFailed && strings.Contains(ev.Message, "expired")
	})
}

// lateCommits lists the snapshots of any table that the lease l made at
// or after since.
func lateCommits(t *testing.T, e *env, l meta.Lease, since time.Time) []string {
	ctx := context.Background()
	var out []string
	for _, ns := range lake.Namespaces {
		ids, err := e.deps.Lake.Tables(ctx, ns)
		must(t, err)
		for _, id := range ids {
			tbl, err := e.deps.Lake.Load(ctx, id)
			must(t, err)
			for _, s := range tbl.Metadata().Snapshots() {
				p := s.Summary.Properties
				if p["medallion.worker"] == l.Worker && p["medallion.partition"] == l.Key.String() &&
					p["medallion.attempt"] == strconv.Itoa(l.Attempt) && s.TimestampMs >= since.UnixMilli() {
					out = append(out, fmt.Sprintf("%s@%d", id, s.SnapshotID))
				}
			}
		}
	}
	return out
}

// fingerprints maps each table of namespace ns to its live data files'
// partitions and fingerprints, sorted.
func fingerprints(t *testing.T, e *env, ns string) map[string][]string {
	ctx := context.Background()
	out := map[string][]string{}
	ids, err := e.deps.Lake.Tables(ctx, ns)
	must(t, err)
	for _, id := range ids {
		files, err := e.deps.Lake.Files(ctx, id, nil, lake.Snapshot{})
		must(t, err)
		for _, f := range files {
			name := strings.TrimSuffix(path.Base(f.URI), ".parquet")
			fp, _, _ := strings.Cut(name, "-") // a rewritten name's suffix
			out[id.String()] = append(out[id.String()], path.Base(path.Dir(f.URI))+"/"+fp)
		}
		slices.Sort(out[id.String()])
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lines keeps the lines of s that contain word.
func lines(s, word string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestFollowingWorkerWakesOnNotify: a worker following the queue with an
// hour between polls processes what a run --no-process queues at once,
// woken by the run's NOTIFY.
func TestFollowingWorkerWakesOnNotify(t *testing.T) {
	e := newEnv(t, "postgres+s3", nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := pipeline.Work(ctx, e.deps, pipeline.WorkOptions{Follow: true, Poll: time.Hour})
		done <- err
	}()
	time.Sleep(500 * time.Millisecond) // the worker found the queue empty and waits
	msgs, err := generate.Generate(generate.Options{Seed: 13, Start: medtype.MustDate("2024-02-01"), Days: 1, EventsPerDay: 300, Domains: []string{"orders"}})
	must(t, err)
	e.write(t, msgs, false)
	queuedAt := time.Now()
	e.run(t, pipeline.Options{NoProcess: true})
	waitFor(t, "the worker to process the queued partition", func() bool {
		p, err := e.deps.Store.Get(ctx, medtype.PartitionKey{Domain: "orders", Date: medtype.MustDate("2024-02-01")})
		return err == nil && p.Status == medtype.StateDone
	})
	if took := time.Since(queuedAt); took > time.Minute {
		t.Fatalf("the following worker took %s", took)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("a following worker stopped: %v", err)
	}
}

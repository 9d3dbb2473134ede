package pipeline_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/pipeline"
)

// childDirEnv names, in a child process of TestKilledRun, the folder of its
// parent's lake.
const childDirEnv = "MEDALLION_ENGINE_CHILD_DIR"

// TestKilledRun: a run's process is killed (SIGKILL) while it holds a
// partition in flight. Nothing it had not finished is recorded as done;
// once its lease expires the next run finishes every partition, and the
// tables equal those of a clean run, with no duplicate rows.
func TestKilledRun(t *testing.T) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		// The child: a run on the parent's lake, until the parent kills it.
		e := newEnvIn(t, dir, "sqlite+local", nil, nil)
		e.cfg.Pipeline.Workers = 1
		e.run(t, pipeline.Options{})
		return
	}
	dir := t.TempDir()
	e := newEnvIn(t, dir, "sqlite+local", nil, nil)
	msgs, err := generate.Generate(generate.Options{Seed: 5, Start: medtype.MustDate("2024-03-01"), Days: 2, EventsPerDay: 40_000,
		Duplicates: 0.02, Malformed: 0.002})
	must(t, err)
	e.write(t, msgs, false)

	child := exec.Command(os.Args[0], "-test.run=^TestKilledRun$", "-test.v")
	child.Env = append(os.Environ(), childDirEnv+"="+dir)
	must(t, child.Start())
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()

	// Kill it once silver.events is committed while a partition is in
	// flight: mid-partition, usually between its silver and gold commits.
	ctx := context.Background()
	deadline := time.After(2 * time.Minute)
	var snaps map[string]int64
	for ready := false; !ready; {
		select {
		case err := <-exited:
			t.Fatalf("the run ended before it was killed: %v", err)
		case <-deadline:
			child.Process.Kill()
			t.Fatal("the run never committed silver.events")
		case <-time.After(10 * time.Millisecond):
		}
		parts, err := e.deps.Store.List(ctx, meta.Filter{States: []medtype.PartitionState{medtype.StateInFlight}})
		must(t, err)
		if len(parts) > 0 {
			snaps = e.snapshots(t)
			ready = snaps["silver.events"] != 0
		}
	}
	must(t, child.Process.Signal(syscall.SIGKILL))
	if err := <-exited; err == nil {
		t.Fatal("the killed run exited cleanly")
	}

	all, err := e.deps.Store.List(ctx, meta.Filter{})
	must(t, err)
	var killed []medtype.PartitionKey
	for _, p := range all {
		if p.Status == medtype.StateInFlight {
			killed = append(killed, p.Key)
		}
	}
	if len(killed) != 1 || len(all) == 0 {
		t.Fatalf("after the kill: %d partitions in flight (%v) of %d, want one", len(killed), killed, len(all))
	}
	t.Logf("killed while %s was in flight; tables committed then: %v", killed[0], snaps)

	// While the lease lives, a run leaves that partition alone; once it
	// has expired, the next run takes it over and finishes everything.
	e.run(t, pipeline.Options{})
	if p := e.state(t, killed[0].Domain, killed[0].Date.String()); p.Status != medtype.StateInFlight {
		t.Fatalf("a live lease was taken over: %s is %s", killed[0], p.Status)
	}
	e.deps.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	sum := e.run(t, pipeline.Options{})
	allDone(t, sum)
	// A crash is not the partition's fault: the rescue retries it without
	// counting against max_retries.
	if p := e.state(t, killed[0].Domain, killed[0].Date.String()); p.Status != medtype.StateDone || p.RetryCount != 0 || p.Attempts != 2 {
		t.Fatalf("the killed partition after the rescue: %s, %d retries counted, %d attempts", p.Status, p.RetryCount, p.Attempts)
	}
	e.checkTables(t, buildModel(msgs, false))
}

// TestInterruptedRunsAreNotCounted: a run stopped (SIGTERM) while a
// partition is in flight marks it FAILED as an interruption. More such
// stops than max_retries never make a healthy partition DEAD: each next
// run retries it without counting, and it ends DONE with no retry counted.
func TestInterruptedRunsAreNotCounted(t *testing.T) {
	e := newEnv(t, "sqlite+local", nil, nil)
	e.cfg.Pipeline.Workers, e.cfg.Pipeline.MaxRetries = 1, 1
	msgs, err := generate.Generate(generate.Options{Seed: 6, Start: medtype.MustDate("2024-03-01"), Days: 1, EventsPerDay: 40_000,
		Domains: []string{"events"}})
	must(t, err)
	e.write(t, msgs, false)
	k := medtype.PartitionKey{Domain: "events", Date: medtype.MustDate("2024-03-01")}
	for i := 0; i < e.cfg.Pipeline.MaxRetries+2; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		ran, stopped := make(chan struct{}), make(chan bool, 1)
		go func() { // SIGTERM once the partition is in flight
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ran:
					stopped <- false
					return
				case <-tick.C:
				}
				if p, err := e.deps.Store.Get(context.Background(), k); err == nil && p.Status == medtype.StateInFlight {
					cancel()
					stopped <- true
					return
				}
			}
		}()
		_, err := pipeline.Run(ctx, e.deps, pipeline.Options{})
		close(ran)
		if !<-stopped {
			t.Fatalf("run %d finished before it could be stopped: the partition is %s", i+1, e.state(t, "events", "2024-03-01").Status)
		}
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("stopped run %d: %v", i+1, err)
		}
		p := e.state(t, "events", "2024-03-01")
		if p.Status != medtype.StateFailed || !p.RetryExempt || !strings.HasPrefix(p.ErrorMessage, "interrupted: ") {
			t.Fatalf("after stop %d: %s exempt=%v %q", i+1, p.Status, p.RetryExempt, p.ErrorMessage)
		}
	}
	allDone(t, e.run(t, pipeline.Options{}))
	if p := e.state(t, "events", "2024-03-01"); p.Status != medtype.StateDone || p.RetryCount != 0 {
		t.Fatalf("after %d interruptions: %s with %d retries counted", e.cfg.Pipeline.MaxRetries+2, p.Status, p.RetryCount)
	}
}

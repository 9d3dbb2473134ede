package pipeline_test

import (
	"io/fs"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/pipeline"
)

// TestPartitionLargerThanMemorySpills: a partition whose JSON alone is
// larger than duckdb.memory_limit is processed by spilling to the spill
// folder, with correct results, instead of failing out of memory.
//
// One thread: DuckDB's Parquet writer buffers a row group per thread, so a
// limit this small needs the headroom of a single thread (see README).
func TestPartitionLargerThanMemorySpills(t *testing.T) {
	cfgs, err := config.BuiltinDomains()
	must(t, err)
	var events []config.Domain
	for _, d := range cfgs {
		if d.Name == "events" {
			events = append(events, d)
		}
	}
	e := newEnv(t, "sqlite+local", nil, events)
	const limitMB = 80
	spill := t.TempDir()
	db, err := duck.Open(config.DuckDB{MemoryLimit: "80MB", Threads: 1, SpillDir: spill})
	must(t, err)
	t.Cleanup(func() { db.Close() })
	e.deps.Duck = db

	msgs, err := generate.Generate(generate.Options{Seed: 9, Start: medtype.MustDate("2024-04-01"), Days: 1, EventsPerDay: 400_000,
		Duplicates: 0.02, Domains: []string{"events"}})
	must(t, err)
	var payload int
	for _, m := range msgs {
		payload += len(m.Value)
	}
	if payload < limitMB<<20 {
		t.Fatalf("the partition (%d MB of JSON) is not larger than the memory limit", payload>>20)
	}
	e.write(t, msgs, false)

	// Sample the spill folder while the run works, to see that it spilled.
	stop := make(chan struct{})
	var peak int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				peak = max(peak, dirSize(spill))
			}
		}
	}()
	sum := e.run(t, pipeline.Options{})
	close(stop)
	wg.Wait()
	allDone(t, sum)
	if peak == 0 {
		t.Fatal("nothing was spilled: the test does not exercise spilling")
	}
	m := buildModel(msgs, false)
	if got := e.rows(t, "silver.events", "SELECT count(*), count(DISTINCT event_id) FROM t"); got[0] != itoa(len(m.eventIDs))+"\t"+itoa(len(m.eventIDs)) {
		t.Fatalf("silver.events count/distinct = %s, want %d", got[0], len(m.eventIDs))
	}
	diff(t, "gold.events_hourly", e.rows(t, "gold.events_hourly",
		"SELECT event_date, strftime(event_hour, '%Y-%m-%d %H:%M:%S'), event_type, events, unique_users FROM t"), m.eventsHourly())
	t.Logf("processed %d MB of JSON under a %d MB memory limit; spill folder peaked at %d MB", payload>>20, limitMB, peak>>20)
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

package pipeline_test

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/filesystem"
)

// stallBucket calls stall before the first data file a job uploads to the
// warehouse: the moment a worker stops (SIGSTOP, a long GC, a starved
// node) between computing a partition and committing it.
type stallBucket struct {
	storage.Bucket
	stall func()
}

func (b stallBucket) Put(ctx context.Context, key string, r io.Reader, md map[string]string) error {
	if strings.HasPrefix(key, "warehouse/") && strings.Contains(key, "/data/") {
		b.stall()
	}
	return b.Bucket.Put(ctx, key, r, md)
}

// TestStalledWorkerCommitsNothing: a worker whose lease expires between
// computing a partition and committing it (nobody rescued it yet) commits
// no snapshot, gives the partition back as an interruption, and the next
// run processes it without counting a retry.
func TestStalledWorkerCommitsNothing(t *testing.T) {
	for _, backend := range backendNames {
		t.Run(backend, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.Pipeline.Workers, cfg.Pipeline.LeaseTTL = 1, time.Minute
			doms, err := config.BuiltinDomains()
			must(t, err)
			cfg.Domains = doms
			var (
				inner   storage.Bucket
				metaURL string
			)
			if backend == "sqlite+local" {
				dir := t.TempDir()
				inner, err = filesystem.New(filesystem.Config{Root: filepath.Join(dir, "lakehouse")})
				must(t, err)
				metaURL = "sqlite://" + filepath.Join(dir, "medallion.db")
			} else {
				srv := testenv.StartS3(t)
				cfg.Storage.S3 = config.S3{Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}
				inner, metaURL = srv.Bucket(t, "", nil), testenv.PostgresSchema(t)
			}
			var stalled atomic.Bool
			e := newEnvOn(t, &cfg, nil, metaURL, stallBucket{Bucket: inner, stall: func() { stalled.Store(true) }})
			// The stall lasts two minutes on the worker's clock.
			e.deps.Now = func() time.Time {
				if stalled.Load() {
					return time.Now().Add(2 * time.Minute)
				}
				return time.Now()
			}
			msgs, err := generate.Generate(generate.Options{Seed: 12, Start: medtype.MustDate("2024-02-01"), Days: 1, EventsPerDay: 500, Domains: []string{"orders"}})
			must(t, err)
			e.write(t, msgs, false)

			sum := e.run(t, pipeline.Options{Domains: []string{"orders"}})
			p := e.state(t, "orders", "2024-02-01")
			if !stalled.Load() || sum.Domains[0].Failed != 1 || p.Status != medtype.StateFailed || !p.RetryExempt || !strings.Contains(p.ErrorMessage, "lease expired") {
				t.Fatalf("after the stall: %s exempt=%v %q (%+v)", p.Status, p.RetryExempt, p.ErrorMessage, *sum.Domains[0])
			}
			if snaps := e.snapshots(t); len(snaps) != 0 {
				t.Fatalf("a worker past its lease committed %v", snaps)
			}
			allDone(t, e.run(t, pipeline.Options{Domains: []string{"orders"}}))
			if p := e.state(t, "orders", "2024-02-01"); p.Status != medtype.StateDone || p.RetryCount != 0 || p.Attempts != 2 {
				t.Fatalf("the next run: %s, %d retries counted, %d attempts", p.Status, p.RetryCount, p.Attempts)
			}
			if e.snapshots(t)["gold.orders_daily"] == 0 {
				t.Fatal("the next run wrote no gold")
			}
		})
	}
}

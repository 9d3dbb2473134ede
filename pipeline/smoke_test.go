package pipeline_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/domains"
	_ "github.com/medallionlake/medallion/domains/all"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/storage/filesystem"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := filesystem.New(filesystem.Config{Root: filepath.Join(dir, "lakehouse")})
	store, err := meta.Open(ctx, "sqlite://"+filepath.Join(dir, "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := lake.Open(ctx, store, b, config.S3{})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := duck.Open(config.DuckDB{})
	doms, err := domains.Default.BindAll(cfg.Domains)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := generate.Generate(generate.Options{Seed: 1, Start: medtype.MustDate("2024-01-15"), Days: 2, EventsPerDay: 2000, Duplicates: 0.02, Malformed: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	st, err := generate.WriteBronze(ctx, b, cfg.Domains, msgs, false, 500, time.Now())
	t.Logf("bronze %+v %v", st, err)
	deps := pipeline.Deps{Config: cfg, Store: store, Bucket: b, Lake: l, Duck: d, Domains: doms, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	start := time.Now()
	sum, err := pipeline.Run(ctx, deps, pipeline.Options{})
	t.Logf("run %v %v", time.Since(start), err)
	for _, ds := range sum.Domains {
		t.Logf("%+v", *ds)
	}
	for k, v := range sum.Failures {
		t.Logf("FAIL %s: %s", k, v)
	}
	sum, err = pipeline.Run(ctx, deps, pipeline.Options{})
	for _, ds := range sum.Domains {
		t.Logf("second %+v", *ds)
	}
}

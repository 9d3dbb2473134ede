// Package laketest sets up the embedded deployment for tests of the silver
// and gold jobs: local storage, a SQLite meta store with its Iceberg
// catalog, DuckDB, and the built-in domains.
package laketest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/domains"
	_ "github.com/medallionlake/medallion/domains/all" // the built-in domains
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/storage/filesystem"
)

// Env is a fresh lake in a test's temp folder; t.Cleanup closes it.
type Env struct {
	Bucket *filesystem.Bucket
	Store  meta.Store
	Lake   *lake.Lake
	Duck   *duck.DB
}

// New builds an Env.
func New(t testing.TB) Env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	b, err := filesystem.New(filesystem.Config{Root: filepath.Join(dir, "lakehouse")})
	if err != nil {
		t.Fatal(err)
	}
	store, err := meta.Open(ctx, "sqlite://"+filepath.Join(dir, "medallion.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	l, err := lake.Open(ctx, store, b, config.S3{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := duck.Open(config.DuckDB{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return Env{Bucket: b, Store: store, Lake: l, Duck: db}
}

// Domain binds the built-in domain name.
func Domain(t testing.TB, name string) domains.Domain {
	t.Helper()
	cfgs, err := config.BuiltinDomains()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfgs {
		if c.Name == name {
			d, err := domains.Default.Bind(c)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
	}
	t.Fatalf("no built-in domain %s", name)
	return domains.Domain{}
}

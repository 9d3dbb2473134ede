package filesystem_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/filesystem"
	"github.com/medallionlake/medallion/storage/storagetest"
)

func TestAcceptanceFilesystem(t *testing.T) {
	storagetest.Acceptance(t, func(t *testing.T) storage.Bucket {
		b, err := filesystem.New(filesystem.Config{Root: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// The fallback for filesystems without user xattrs: metadata in sidecars.
func TestAcceptanceFilesystemSidecar(t *testing.T) {
	storagetest.Acceptance(t, func(t *testing.T) storage.Bucket {
		b, err := filesystem.New(filesystem.Config{Root: t.TempDir(), Sidecar: true})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// Metadata written as a sidecar is still read after the bucket starts using
// xattrs, and a rewrite with xattrs removes the stale sidecar.
func TestSidecarThenXattr(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	side, err := filesystem.New(filesystem.Config{Root: root, Sidecar: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := side.Put(ctx, "k", strings.NewReader("v1"), map[string]string{"n": "1"}); err != nil {
		t.Fatal(err)
	}
	x, err := filesystem.New(filesystem.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	st, err := x.Stat(ctx, "k")
	if err != nil || st.Metadata["n"] != "1" {
		t.Fatalf("sidecar metadata through an xattr bucket: %v %v", st.Metadata, err)
	}
	if err := x.Put(ctx, "k", strings.NewReader("v2"), map[string]string{"n": "2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".k.meta.json")); !os.IsNotExist(err) {
		t.Fatalf("stale sidecar left behind: %v", err)
	}
	if st, _ := x.Stat(ctx, "k"); st.Metadata["n"] != "2" {
		t.Fatalf("metadata after rewrite: %v", st.Metadata)
	}
}

// A crash mid-write leaves a hidden temporary file; it must never be listed
// or read as an object.
func TestLeftoverTemporariesAreInvisible(t *testing.T) {
	root := t.TempDir()
	b, err := filesystem.New(filesystem.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Put(ctx, "d/obj", strings.NewReader("data"), map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "d", ".obj2.tmp-123"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := storage.ListAll(ctx, b, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Key != "d/obj" {
		t.Fatalf("list = %+v, want only d/obj", objs)
	}
	// Dot-names are reserved for the provider's own files.
	if err := b.Put(ctx, "d/.hidden", strings.NewReader("x"), nil); err == nil {
		t.Fatal("put of a dot-name key succeeded")
	}
}

func TestEmptyRootIsAnError(t *testing.T) {
	if _, err := filesystem.New(filesystem.Config{}); err == nil {
		t.Fatal("New with an empty root succeeded")
	}
}

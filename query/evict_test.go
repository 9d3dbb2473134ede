package query_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/medallionlake/medallion/query"
)

// TestEvict: staged files are listed by key; those not live are removed
// with their bytes counted, live ones stay; a file that cannot be removed
// is an error.
func TestEvict(t *testing.T) {
	dir := t.TempDir()
	for key, size := range map[string]int{"warehouse/gold/t/data/d=1/a.parquet": 10, "warehouse/gold/t/data/d=2/b.parquet": 7} {
		p := filepath.Join(dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	staged, err := query.Staged(dir)
	if err != nil || len(staged) != 2 {
		t.Fatalf("staged: %v %v", staged, err)
	}
	live := map[string]bool{"warehouse/gold/t/data/d=2/b.parquet": true}
	files, bytes, err := query.Evict(staged, live)
	if err != nil || files != 1 || bytes != 10 {
		t.Fatalf("evicted %d files, %d bytes, %v", files, bytes, err)
	}
	if left, _ := query.Staged(dir); len(left) != 1 || left["warehouse/gold/t/data/d=2/b.parquet"] == "" {
		t.Fatalf("left: %v", left)
	}
	// A path that cannot be removed (a folder with a file in it) is an
	// error, not skipped.
	busy := filepath.Join(dir, "warehouse/gold/t/data")
	if _, _, err := query.Evict(map[string]string{"busy": busy}, nil); err == nil {
		t.Fatal("a path that cannot be removed was not an error")
	}
}

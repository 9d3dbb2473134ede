package query

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/storage"
)

// Sessions stage every file they read into the database's one folder
// (duck.DB.TablesDir) and never remove it, so a long-running server would
// keep each file maintain deleted (a hard link keeps it on disk) and each
// download. Eviction removes the staged files no table's current snapshot
// reads. It is safe only while no statement runs: list the staged files
// first (Staged), then the live ones (Live), then, with statements held
// off, remove the difference (Evict). A file staged before the listing and
// not live after it can never be read again: data file names are never
// reused, and every later statement plans from a later snapshot.

// Staged lists the files staged in dir, by storage key.
func Staged(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = path
		return nil
	})
	return out, err
}

// Live is the storage keys of every data file the lake's tables read at
// their current snapshots.
func Live(ctx context.Context, l *lake.Lake) (map[string]bool, error) {
	ids, err := l.AllTables(ctx)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, id := range ids {
		files, err := l.Files(ctx, id, nil, lake.Snapshot{})
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			key, err := storage.KeyOf(l.Bucket(), f.URI)
			if err != nil {
				return nil, err
			}
			live[key] = true
		}
	}
	return live, nil
}

// Evict removes the staged files that are not live, and returns how many
// and their bytes.
func Evict(staged map[string]string, live map[string]bool) (files int, bytes int64, err error) {
	for key, path := range staged {
		if live[key] {
			continue
		}
		st, err := os.Stat(path)
		if err != nil {
			continue // removed meanwhile
		}
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return files, bytes, err
		}
		files++
		bytes += st.Size()
	}
	return files, bytes, nil
}

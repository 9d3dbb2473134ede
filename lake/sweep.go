package lake

import (
	"context"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/medallionlake/medallion/storage"
)

// sweep deletes the files under the table's location that the table after
// expiry does not reference. Files the table referenced before expiry go at
// once: no writer can reference them again, because Write never reuses the
// name of a file that exists (freshKey). Any other unreferenced file is an
// orphan (a crashed writer's, or a temporary file) and goes once it is
// older than the orphan age, so that a concurrent writer's file, written
// but not yet committed, stays. Metadata files older than the oldest in the
// table's log (which keeps write.metadata.previous-versions-max of them)
// are expired too.
func (l *Lake) sweep(ctx context.Context, before, after *table.Table, m Maintenance) (deleted []Deletion, young int, err error) {
	was, err := l.referenced(ctx, before)
	if err != nil {
		return nil, 0, err
	}
	is := was
	if after != before {
		if is, err = l.referenced(ctx, after); err != nil {
			return nil, 0, err
		}
	}
	// A staged (dry-run) table has no metadata file of its own yet: the
	// current one stays.
	if key, err := storage.KeyOf(l.bucket, before.MetadataLocation()); err == nil {
		is[key] = true
	}
	prefix, err := storage.KeyOf(l.bucket, strings.TrimSuffix(after.Location(), "/")+"/")
	if err != nil {
		return nil, 0, err
	}
	oldest := math.MaxInt
	for key := range was {
		oldest = min(oldest, metadataVersion(key))
	}
	cutoff := time.Now().Add(-m.OrphanAge)
	for o, err := range l.bucket.List(ctx, prefix) {
		if err != nil {
			return nil, 0, fmt.Errorf("list %s: %w", prefix, err)
		}
		if is[o.Key] {
			continue
		}
		why := "expired"
		if !was[o.Key] && !(metadataVersion(o.Key) < oldest) {
			if o.ModTime.After(cutoff) {
				young++
				continue
			}
			why = "orphan"
		}
		deleted = append(deleted, Deletion{Key: o.Key, Size: o.Size, Why: why})
	}
	if m.DryRun {
		return deleted, young, nil
	}
	for i, d := range deleted {
		if err := l.bucket.Delete(ctx, d.Key); err != nil {
			return deleted[:i], young, fmt.Errorf("delete %s: %w", d.Key, err)
		}
	}
	return deleted, young, nil
}

// referenced returns the keys of every file a table's metadata refers to:
// the metadata file and those in its log, and each snapshot's manifest
// list, manifests and live data files.
func (l *Lake) referenced(ctx context.Context, t *table.Table) (map[string]bool, error) {
	refs := map[string]bool{}
	add := func(uri string) error {
		key, err := storage.KeyOf(l.bucket, uri)
		if err != nil {
			return err
		}
		refs[key] = true
		return nil
	}
	md := t.Metadata()
	uris := []string{t.MetadataLocation()}
	for e := range md.PreviousFiles() {
		uris = append(uris, e.MetadataFile)
	}
	seen := map[string]bool{}
	for _, snap := range md.Snapshots() {
		uris = append(uris, snap.ManifestList)
		manifests, err := l.manifestPaths(ctx, snap.ManifestList)
		if err != nil {
			return nil, fmt.Errorf("snapshot %d: %w", snap.SnapshotID, err)
		}
		for _, mf := range manifests {
			if seen[mf] {
				continue
			}
			seen[mf] = true
			files, err := l.liveFiles(ctx, mf)
			if err != nil {
				return nil, err
			}
			uris = append(append(uris, mf), files...)
		}
	}
	for _, u := range uris {
		if u == "" {
			continue
		}
		if err := add(u); err != nil {
			return nil, err
		}
	}
	return refs, nil
}

// metadataVersion is the version a metadata file's name starts with
// (00042-<uuid>.metadata.json), or math.MaxInt for any other file.
func metadataVersion(key string) int {
	name := path.Base(key)
	if !strings.HasSuffix(name, ".metadata.json") {
		return math.MaxInt
	}
	digits, _, _ := strings.Cut(name, "-")
	v, err := strconv.Atoi(digits)
	if err != nil {
		return math.MaxInt
	}
	return v
}

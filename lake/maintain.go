package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
)

// Maintenance says how Maintain keeps a table healthy.
type Maintenance struct {
	// SnapshotRetention: snapshots older than this expire, except the
	// newest MinSnapshots (at least 1: the current one always stays).
	SnapshotRetention time.Duration
	MinSnapshots      int
	// OrphanAge: a file under the table that no metadata references is
	// deleted once it is older than this (younger, it may be a concurrent
	// writer's file whose commit is still to come).
	OrphanAge time.Duration
	// CompactTargetSize: a partition with more than one data file smaller
	// than this is rewritten as one file.
	CompactTargetSize int64
	// DryRun reports what would be done and changes nothing.
	DryRun bool
	// Stage holds temporary files of the compaction.
	Stage string
	// Last is where the table's last full pass left it. A table still at
	// that metadata location has no new files, so compaction and the
	// manifest merge are skipped, and so is the sweep (which lists the
	// table's folder) until OrphanAge has passed since: the idle runs of a
	// year-old table stay cheap, and an orphan still goes within twice
	// OrphanAge. A dry run always does every step.
	Last LastPass
}

// LastPass is the state a full maintenance pass left a table in.
type LastPass struct {
	Location string // the metadata file
	At       time.Time
}

// Report is what Maintain did to one table (or would do, on a dry run).
type Report struct {
	Table TableID
	// Compacted lists the partitions rewritten as one file.
	Compacted []Compaction
	// ManifestsBefore and ManifestsAfter count the current snapshot's
	// manifests; they differ when Maintain merged them.
	ManifestsBefore, ManifestsAfter int
	// Expired counts the snapshots removed; Snapshots those kept.
	Expired, Snapshots int
	// Deleted are the files removed from storage.
	Deleted []Deletion
	// Young counts unreferenced files left because they are younger than
	// the orphan age.
	Young int
	// Full says the pass swept the table's folder, and compacted and
	// merged it unless it was unchanged since Maintenance.Last: the state
	// to record as the next pass's Last. Location is the table's metadata
	// file after the pass.
	Full     bool
	Location string
}

// Compaction is one partition whose small files became one.
type Compaction struct {
	Partition string // "" for an unpartitioned table
	Files     int    // files before (one after)
	Bytes     int64  // their total size
}

// Deletion is one file removed from storage.
type Deletion struct {
	Key  string
	Size int64
	// Why is "expired" (only expired snapshots referenced it) or "orphan"
	// (no metadata referenced it).
	Why string
}

// Freed is the bytes the deletions freed.
func (r Report) Freed() int64 {
	var n int64
	for _, d := range r.Deleted {
		n += d.Size
	}
	return n
}

// Maintain compacts small files, merges manifests, expires old snapshots
// and deletes the files no retained snapshot references, in that order so
// that the files the first two steps replace are deleted by the last once
// they expire. Each commit is retried on conflict with a concurrent
// writer, which in turn retries its own. A missing table is nothing to do.
func (l *Lake) Maintain(ctx context.Context, conn *sql.Conn, id TableID, m Maintenance) (Report, error) {
	r := Report{Table: id}
	t, err := l.Load(ctx, id)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	// Each step gets the table the one before left, and loads it afresh
	// only after losing a race, so an idle table is read once.
	unchanged := !m.DryRun && m.Last.Location == t.MetadataLocation()
	var before *table.Table
	var steps []func(*table.Table) (*table.Table, error)
	if !unchanged {
		steps = append(steps, func(t *table.Table) (nt *table.Table, err error) {
			nt, r.Compacted, err = l.compact(ctx, conn, id, t, m)
			return nt, err
		}, func(t *table.Table) (nt *table.Table, err error) {
			nt, r.ManifestsBefore, r.ManifestsAfter, err = mergeManifests(ctx, id, t, m.DryRun)
			return nt, err
		})
	}
	steps = append(steps, func(t *table.Table) (nt *table.Table, err error) {
		before = t
		nt, r.Expired, err = expire(ctx, id, t, m)
		return nt, err
	})
	for _, step := range steps {
		if t, err = l.onTable(ctx, id, t, step); err != nil {
			return r, fmt.Errorf("maintain %s: %w", id, err)
		}
	}
	r.Snapshots, r.Location = len(t.Metadata().Snapshots()), t.MetadataLocation()
	if unchanged && r.Expired == 0 && time.Since(m.Last.At) < m.OrphanAge {
		return r, nil
	}
	if r.Deleted, r.Young, err = l.sweep(ctx, before, t, m); err != nil {
		return r, fmt.Errorf("maintain %s: %w", id, err)
	}
	r.Full = true
	return r, nil
}

// onTable runs step on t and returns the table it leaves; a step that
// lost a race to another writer (ErrConflict) runs again on the reloaded
// table.
func (l *Lake) onTable(ctx context.Context, id TableID, t *table.Table, step func(*table.Table) (*table.Table, error)) (*table.Table, error) {
	attempt := 0
	err := Retry(ctx, func() error {
		if attempt++; attempt > 1 {
			nt, err := l.Load(ctx, id)
			if err != nil {
				return err
			}
			t = nt
		}
		nt, err := step(t)
		if err == nil {
			t = nt
		}
		return err
	})
	return t, err
}

// commit commits a maintenance transaction, telling a lost race apart.
func commit(ctx context.Context, id TableID, what string, tx *table.Transaction) (*table.Table, error) {
	nt, err := tx.Commit(ctx)
	if err != nil {
		return nil, asConflict(fmt.Errorf("%s %s: %w", what, id, err))
	}
	return nt, nil
}

// expire removes the snapshots older than the retention beyond the newest
// MinSnapshots. It returns the table after (the staged table on a dry
// run; t itself when nothing expires).
func expire(ctx context.Context, id TableID, t *table.Table, m Maintenance) (after *table.Table, expired int, err error) {
	tx := t.NewTransaction()
	keep := max(1, m.MinSnapshots, newerThan(t, time.Now().Add(-m.SnapshotRetention))+1)
	err = tx.ExpireSnapshots(table.WithOlderThan(m.SnapshotRetention), table.WithRetainLast(keep),
		table.WithPostCommit(false)) // sweep deletes, through the bucket, and counts what it frees
	if err != nil {
		return nil, 0, fmt.Errorf("expire snapshots of %s: %w", id, err)
	}
	staged, err := tx.StagedTable()
	if err != nil {
		return nil, 0, fmt.Errorf("expire snapshots of %s: %w", id, err)
	}
	expired = len(t.Metadata().Snapshots()) - len(staged.Metadata().Snapshots())
	switch {
	case expired == 0:
		return t, 0, nil
	case m.DryRun:
		return staged.Table, expired, nil
	}
	if after, err = commit(ctx, id, "expire snapshots of", tx); err != nil {
		return nil, 0, err
	}
	return after, expired, nil
}

// newerThan counts the current snapshot and its ancestors committed after
// cutoff. Keeping one more than these keeps the snapshot that was current
// at the cutoff, so that time travel to any moment of the retention window
// works, not only to moments after the window's first commit.
func newerThan(t *table.Table, cutoff time.Time) int {
	snap := t.CurrentSnapshot()
	if snap == nil {
		return 0
	}
	md := t.Metadata()
	n := 0
	for _, s := range table.AncestorsOf(snap.SnapshotID, func(id int64) *table.Snapshot { return md.SnapshotByID(id) }) {
		if s.TimestampMs <= cutoff.UnixMilli() {
			break
		}
		n++
	}
	return n
}

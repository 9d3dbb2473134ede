package lake

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/medtype"
)

// compact rewrites, in one snapshot, each partition's small data files
// (under the target size) as one file when it has more than one. Medallion
// writes one file per partition, so only files other writers added are
// ever compacted. The new file is named after its rows' fingerprint, as
// Write names them, so the next write of the same rows is skipped.
func (l *Lake) compact(ctx context.Context, conn *sql.Conn, id TableID, t *table.Table, m Maintenance) (*table.Table, []Compaction, error) {
	if t.CurrentSnapshot() == nil {
		return t, nil, nil
	}
	column, ok := partitionColumn(t)
	if !ok {
		return t, nil, nil // a partitioning Medallion does not write: left alone
	}
	groups, err := smallFiles(ctx, t, m.CompactTargetSize)
	if err != nil || len(groups) == 0 {
		return t, nil, err
	}
	var (
		done     []Compaction
		old, add []string
		rows     int64
	)
	for _, g := range groups {
		c := Compaction{Partition: g.partition, Files: len(g.files)}
		for _, f := range g.files {
			c.Bytes += f.Size
			old = append(old, f.URI)
		}
		done = append(done, c)
		if m.DryRun {
			continue
		}
		uri, n, err := l.rewriteOne(ctx, conn, id, column, g.files, m.Stage)
		if err != nil {
			return nil, nil, err
		}
		add, rows = append(add, uri), rows+n
	}
	if m.DryRun {
		return t, done, nil
	}
	tx := t.NewTransaction()
	if err := tx.ReplaceDataFiles(ctx, old, add, l.snapshotProps(rows)); err != nil {
		return nil, nil, fmt.Errorf("compact %s: %w", id, err)
	}
	nt, err := commit(ctx, id, "compact", tx)
	if err != nil {
		return nil, nil, err
	}
	return nt, done, nil
}

// partitionColumn is the date column a table is identity-partitioned by,
// "" for an unpartitioned table; ok is false for any other partitioning.
func partitionColumn(t *table.Table) (string, bool) {
	spec := t.Spec()
	switch spec.NumFields() {
	case 0:
		return "", true
	case 1:
		f := spec.Field(0)
		if _, identity := f.Transform.(iceberg.IdentityTransform); !identity {
			return "", false
		}
		name, found := t.Schema().FindColumnName(f.SourceID())
		return name, found
	}
	return "", false
}

type fileGroup struct {
	partition string
	files     []DataFile
}

// smallFiles groups the live files under the target size by partition,
// keeping the groups of more than one file.
func smallFiles(ctx context.Context, t *table.Table, target int64) ([]fileGroup, error) {
	tasks, err := t.Scan().PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan files of %s: %w", strings.Join(t.Identifier(), "."), err)
	}
	byPartition := map[string][]DataFile{}
	for _, task := range tasks {
		f := task.File
		if f.FileSizeBytes() >= target {
			continue
		}
		key := fmt.Sprint(f.Partition())
		byPartition[key] = append(byPartition[key], DataFile{URI: f.FilePath(), Rows: f.Count(), Size: f.FileSizeBytes()})
	}
	var groups []fileGroup
	for key, files := range byPartition {
		if len(files) > 1 {
			slices.SortFunc(files, func(a, b DataFile) int { return strings.Compare(a.URI, b.URI) })
			groups = append(groups, fileGroup{partition: key, files: files})
		}
	}
	slices.SortFunc(groups, func(a, b fileGroup) int { return strings.Compare(a.partition, b.partition) })
	return groups, nil
}

// rewriteOne writes the rows of files as one new data file and returns its
// URI and row count.
func (l *Lake) rewriteOne(ctx context.Context, conn *sql.Conn, id TableID, column string, files []DataFile, stage string) (string, int64, error) {
	dir, err := os.MkdirTemp(stage, "compact-*")
	if err != nil {
		return "", 0, err
	}
	defer os.RemoveAll(dir)
	paths, err := l.Fetch(ctx, files, dir)
	if err != nil {
		return "", 0, err
	}
	from, err := l.Relation(ctx, conn, id, Snapshot{}, paths)
	if err != nil {
		return "", 0, err
	}
	rel := "(SELECT * FROM " + from + ")"
	cols, err := duck.DescribeQuery(ctx, conn, "SELECT * FROM "+rel)
	if err != nil {
		return "", 0, err
	}
	prints, err := fingerprints(ctx, conn, rel, cols, column)
	if err != nil {
		return "", 0, err
	}
	if len(prints) != 1 {
		return "", 0, fmt.Errorf("compact %s: files %v hold %d partitions", id, files, len(prints))
	}
	value := slices.Collect(maps.Keys(prints))[0] // the one partition
	fp := prints[value]
	var p *Partition
	if column != "" {
		date, err := medtype.ParseDate(value)
		if err != nil {
			return "", 0, fmt.Errorf("compact %s: partition %s: %w", id, value, err)
		}
		p = &Partition{Column: column, Date: date}
	}
	def := TableDef{ID: id, PartitionColumn: column}
	key, err := l.freshKey(ctx, l.dataKey(def, p, fp.hash), nil)
	if err != nil {
		return "", 0, err
	}
	if err := l.writeFile(ctx, conn, def, rel, key, dir); err != nil {
		return "", 0, err
	}
	return l.bucket.URI(key), fp.rows, nil
}

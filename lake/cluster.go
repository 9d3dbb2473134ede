package lake

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// maxUnsettled is how many manifests beyond one per month a snapshot may
// plan from before Maintain merges them: each commit adds one, so without
// a bound a year of daily runs plans from hundreds.
const maxUnsettled = 8

// Manifests are merged into one per month of the partition date, not
// bin-packed by size: a manifest's partition bounds then span one month,
// so a query over a week plans from that month's manifest and skips the
// rest (bin-packing a year gave manifests spanning every date, which the
// planner must all read). A month already in one manifest is left alone,
// so a year-old table rewrites only its recent manifests.
//
// mergeManifests rewrites the current snapshot's manifests, one per month,
// when it plans from more than maxUnsettled beyond that.
func mergeManifests(ctx context.Context, id TableID, t *table.Table, dryRun bool) (nt *table.Table, before, after int, err error) {
	snap := t.CurrentSnapshot()
	if snap == nil {
		return t, 0, 0, nil
	}
	fs, err := t.FS(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	manifests, err := snap.Manifests(fs)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read manifests of %s: %w", id, err)
	}
	before = len(manifests)
	unsettled := unsettledManifests(manifests)
	if len(unsettled) <= maxUnsettled || dryRun {
		return t, before, before, nil
	}
	tx := t.NewTransaction()
	res, err := tx.RewriteManifests(ctx,
		table.WithRewriteManifestPredicate(func(m iceberg.ManifestFile) bool { return unsettled[m.FilePath()] }),
		table.WithRewriteManifestClusterBy(fileMonth))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("rewrite manifests of %s: %w", id, err)
	}
	if res.IsNoOp() {
		return t, before, before, nil
	}
	if nt, err = commit(ctx, id, "rewrite manifests of", tx); err != nil {
		return nil, 0, 0, err
	}
	return nt, before, before - len(res.RewrittenManifests) + len(res.AddedManifests), nil
}

// unsettledManifests are the data manifests to rewrite: those whose
// partition dates span more than one month, and those of a month that
// has more than one manifest.
func unsettledManifests(manifests []iceberg.ManifestFile) map[string]bool {
	byMonth := map[int][]string{}
	out := map[string]bool{}
	for _, m := range manifests {
		if m.ManifestContent() != iceberg.ManifestContentData {
			continue
		}
		if month, ok := manifestMonth(m); ok {
			byMonth[month] = append(byMonth[month], m.FilePath())
		} else {
			out[m.FilePath()] = true
		}
	}
	for _, paths := range byMonth {
		if len(paths) > 1 {
			for _, p := range paths {
				out[p] = true
			}
		}
	}
	return out
}

// manifestMonth is the one month a manifest's partition dates lie in (0
// for an unpartitioned table's manifests); ok is false when they span
// more than one or the bounds are missing.
func manifestMonth(m iceberg.ManifestFile) (month int, ok bool) {
	parts := m.Partitions()
	if len(parts) == 0 {
		return 0, true
	}
	lo, hi := parts[0].LowerBound, parts[0].UpperBound
	if len(parts) != 1 || lo == nil || hi == nil || len(*lo) != 4 || len(*hi) != 4 {
		return 0, false
	}
	// A date's bound is its days since 1970 as a little-endian int32.
	first := monthOf(int32(binary.LittleEndian.Uint32(*lo)))
	return first, first == monthOf(int32(binary.LittleEndian.Uint32(*hi)))
}

// fileMonth clusters a data file by the month of its partition date.
func fileMonth(f iceberg.DataFile) any {
	for _, v := range f.Partition() {
		switch d := v.(type) {
		case iceberg.Date:
			return monthOf(int32(d))
		case int32:
			return monthOf(d)
		}
	}
	return 0
}

// monthOf numbers the month of a day counted from 1970-01-01.
func monthOf(days int32) int {
	t := time.Unix(int64(days)*86400, 0).UTC()
	return t.Year()*12 + int(t.Month())
}

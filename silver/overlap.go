package silver

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/duck"
)

// overlapping reports whether two of a partition's bronze files (keys, and
// their local paths) hold offsets of one Kafka partition in common: the
// duplicates a sink member can leave when it writes after losing its
// partitions (README, "What the sink guarantees"). It reads the offset
// ranges from the files' footers only, so the usual partition, without
// overlaps, pays no dedup pass; a file without a range counts as
// overlapping.
func overlapping(ctx context.Context, conn *sql.Conn, keys, paths []string) (bool, error) {
	type span struct {
		start, end int64
		seen       int
	}
	spans := make(map[string]*span, len(paths))
	abs := make([]string, len(paths))
	for i, p := range paths {
		abs[i], _ = filepath.Abs(p)
		spans[abs[i]] = &span{}
	}
	rows, err := conn.QueryContext(ctx, fmt.Sprintf(`SELECT file_name, decode(key), decode(value) FROM parquet_kv_metadata(%s)
		WHERE decode(key) IN ('%s', '%s')`, duck.List(abs), bronze.MetaStartOffset, bronze.MetaEndOffset))
	if err != nil {
		return false, fmt.Errorf("read bronze offset ranges: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var file, key, value string
		if err := rows.Scan(&file, &key, &value); err != nil {
			return false, err
		}
		s, ok := spans[file]
		n, err := strconv.ParseInt(value, 10, 64)
		if !ok || err != nil {
			return true, nil
		}
		if key == bronze.MetaStartOffset {
			s.start = n
		} else {
			s.end = n
		}
		s.seen++
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("read bronze offset ranges: %w", err)
	}
	byPartition := map[string][]*span{}
	for i, k := range keys {
		f, err := bronze.ParseKey(k)
		s := spans[abs[i]]
		if err != nil || s.seen != 2 {
			return true, nil
		}
		id := f.Topic + "+" + strconv.Itoa(int(f.Partition))
		byPartition[id] = append(byPartition[id], s)
	}
	for _, ss := range byPartition {
		slices.SortFunc(ss, func(a, b *span) int { return cmp.Compare(a.start, b.start) })
		for i := 1; i < len(ss); i++ {
			if ss[i].start <= ss[i-1].end {
				return true, nil
			}
		}
	}
	return false, nil
}

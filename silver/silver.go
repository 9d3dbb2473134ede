// Package silver is the bronze -> silver job for one (domain, date)
// partition: stage the bronze files, parse and validate with the domain's
// parse.sql, quarantine invalid rows, deduplicate, add record_hash, and
// replace the silver and quarantine partitions.
package silver

import (
	"context"
	"database/sql"
	_ "embed"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/medallionlake/medallion/domains"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/storage"
)

//go:embed macros.sql
var macros string

// Env is what the job reads and writes.
type Env struct {
	Bucket storage.Bucket // holds bronze
	Lake   *lake.Lake
}

// Result describes one silver run.
type Result struct {
	BronzeRecords int64
	SilverRecords int64 // rows of the main silver table
	Quarantined   int64
	// Commits per table (silver.events, quarantine.events, …).
	Commits map[string]lake.Commit
}

// lineage columns parse.sql must pass through.
var lineage = []string{"_topic", "_partition", "_offset", "_kafka_ts", "_source_file", "payload"}

// Run builds a partition's silver tables from its bronze files (keys) on
// conn. It leaves the TEMP tables silver_<table> on conn for the gold job.
// Re-running it on the same files writes nothing.
func Run(ctx context.Context, conn *sql.Conn, env Env, d domains.Domain, date medtype.Date, files []string, stageDir string) (Result, error) {
	res := Result{Commits: map[string]lake.Commit{}}
	if err := Prepare(ctx, conn, date); err != nil {
		return res, err
	}
	if err := stageBronze(ctx, conn, env.Bucket, files, filepath.Join(stageDir, "bronze")); err != nil {
		return res, err
	}
	cols, err := duck.DescribeQuery(ctx, conn, d.Parse)
	if err != nil {
		return res, fmt.Errorf("%s parse.sql: %w", d.Name, err)
	}
	if missing := duck.Missing(cols, append([]string{d.PartitionKey, "_reason"}, lineage...)...); len(missing) > 0 {
		return res, fmt.Errorf("%s parse.sql: does not output %s", d.Name, strings.Join(missing, ", "))
	}

	// A row whose own partition date differs from the bronze partition it
	// sits in cannot be placed; it is quarantined, never dropped.
	pk := duck.Ident(d.PartitionKey)
	day := "DATE " + duck.Literal(date.String())
	reason := fmt.Sprintf("coalesce(_reason, CASE WHEN %s IS DISTINCT FROM %s THEN '%s ' || coalesce(CAST(%s AS VARCHAR), 'NULL') || ' is not the bronze partition %s' END)",
		pk, day, d.PartitionKey, pk, date)
	// parsed keeps the payload of quarantined rows only: copying every
	// payload into it cost more than the parse itself (BENCHMARKS.md).
	if err := execf(ctx, conn, `CREATE OR REPLACE TEMP TABLE parsed AS
		SELECT * REPLACE (CASE WHEN _reason IS NOT NULL THEN payload END AS payload)
		FROM (SELECT * REPLACE (%s AS _reason) FROM (%s
		))`, reason, d.Parse); err != nil {
		return res, fmt.Errorf("%s parse.sql: %w", d.Name, err)
	}
	if res.BronzeRecords, err = duck.Count(ctx, conn, "parsed"); err != nil {
		return res, err
	}

	if err := execf(ctx, conn, `CREATE OR REPLACE TEMP TABLE quarantined AS
		SELECT %s AS partition_date, _source_file, _topic, _partition, _offset, _kafka_ts, _reason AS reason, payload
		FROM parsed WHERE _reason IS NOT NULL`, day); err != nil {
		return res, err
	}
	if res.Quarantined, err = duck.Count(ctx, conn, "quarantined"); err != nil {
		return res, err
	}
	// Silver and quarantine files are written unsorted: sorting a partition
	// larger than memory costs a spill for no reader's benefit.
	qdef := lake.TableDef{ID: lake.TableID{Namespace: string(medtype.LayerQuarantine), Name: d.Name}, PartitionColumn: "partition_date"}
	if err := write(ctx, conn, env.Lake, qdef, "quarantined", lake.PartitionScope("partition_date", date), stageDir, res.Commits); err != nil {
		return res, err
	}

	dedup := ""
	if d.Dedup == "latest" {
		order := "_kafka_ts DESC, _partition DESC, _offset DESC"
		if d.OrderBy != "" {
			order = duck.Ident(d.OrderBy) + " DESC NULLS LAST, " + order
		}
		keys := make([]string, len(d.PrimaryKey))
		for i, k := range d.PrimaryKey {
			keys[i] = duck.Ident(k)
		}
		dedup = fmt.Sprintf("QUALIFY row_number() OVER (PARTITION BY %s ORDER BY %s) = 1", strings.Join(keys, ", "), order)
	}
	// deduped is a view: a single silver table computes the dedup, its
	// record_hash and its rows in one pass. Several silver tables share one
	// materialised dedup instead of repeating it.
	valid := fmt.Sprintf("SELECT * EXCLUDE (_reason, payload) FROM parsed WHERE _reason IS NULL %s", dedup)
	if len(d.Silver) > 1 {
		if err := execf(ctx, conn, "CREATE OR REPLACE TEMP TABLE deduped_rows AS %s", valid); err != nil {
			return res, fmt.Errorf("%s dedup: %w", d.Name, err)
		}
		valid = "SELECT * FROM deduped_rows"
	}
	if err := execf(ctx, conn, "CREATE OR REPLACE TEMP VIEW deduped AS %s", valid); err != nil {
		return res, fmt.Errorf("%s dedup: %w", d.Name, err)
	}

	for _, q := range d.Silver {
		name := "silver_" + q.Table
		sel, err := HashedSelect(ctx, conn, q.SQL, d.PartitionKey)
		if err == nil {
			err = execf(ctx, conn, "CREATE OR REPLACE TEMP TABLE %s AS %s", name, sel)
		}
		if err != nil {
			return res, fmt.Errorf("%s silver/%s.sql: %w", d.Name, q.Table, err)
		}
	}
	// The silver tables are all the gold job reads.
	for _, stmt := range []string{"DROP VIEW deduped", "DROP TABLE IF EXISTS deduped_rows", "DROP TABLE parsed"} {
		if err := execf(ctx, conn, "%s", stmt); err != nil {
			return res, err
		}
	}
	for i, q := range d.Silver {
		name := "silver_" + q.Table
		def := lake.TableDef{ID: lake.TableID{Namespace: string(medtype.LayerSilver), Name: q.Table}, PartitionColumn: d.PartitionKey}
		if err := write(ctx, conn, env.Lake, def, name, lake.PartitionScope(d.PartitionKey, date), stageDir, res.Commits); err != nil {
			return res, err
		}
		if i == 0 {
			if res.SilverRecords, err = duck.Count(ctx, conn, name); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// Prepare defines the helper macros and the partition_date variable on a
// job's connection.
func Prepare(ctx context.Context, conn *sql.Conn, date medtype.Date) error {
	for _, stmt := range strings.Split(macros, ";\n") {
		if strings.TrimSpace(stripComments(stmt)) == "" {
			continue
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("define macros: %w", err)
		}
	}
	return execf(ctx, conn, "SET VARIABLE partition_date = DATE %s", duck.Literal(date.String()))
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// stageBronze defines the view bronze over the partition's files, with
// _source_file set to each row's bronze object key, and each Kafka record
// (topic, partition, offset) once.
func stageBronze(ctx context.Context, conn *sql.Conn, b storage.Bucket, files []string, dir string) error {
	if len(files) == 0 {
		// Every file of the partition is gone: silver becomes empty.
		return execf(ctx, conn, `CREATE OR REPLACE TEMP VIEW bronze AS SELECT NULL::VARCHAR AS _topic, NULL::INTEGER AS _partition,
			NULL::BIGINT AS _offset, NULL::BLOB AS _key, NULL::TIMESTAMP_MS AS _kafka_ts, NULL::TIMESTAMP AS _ingested_at,
			NULL::VARCHAR AS _headers, NULL::VARCHAR AS payload, NULL::TIMESTAMP AS _event_ts, NULL::VARCHAR AS _source_file WHERE false`)
	}
	paths, err := storage.Fetch(ctx, b, files, dir)
	if err != nil {
		return fmt.Errorf("stage bronze: %w", err)
	}
	abs, err := filepath.Abs(paths[0])
	if err != nil {
		return err
	}
	prefix := strings.TrimSuffix(abs, filepath.FromSlash(files[0]))
	dedup := ""
	if overlap, err := overlapping(ctx, conn, files, paths); err != nil {
		return fmt.Errorf("stage bronze: %w", err)
	} else if overlap {
		// One Kafka record in two files: keep one, the same one every run.
		dedup = "QUALIFY row_number() OVER (PARTITION BY _topic, _partition, _offset ORDER BY _source_file) = 1"
	}
	return execf(ctx, conn, "CREATE OR REPLACE TEMP VIEW bronze AS SELECT * EXCLUDE (filename), substr(filename, %d) AS _source_file FROM %s %s",
		len(prefix)+1, duck.ReadParquet(paths, true), dedup)
}

// HashedSelect wraps a silver SELECT, which must output the partition key
// column, to add record_hash: the SHA-256 of the canonical record, the
// columns whose names do not start with an underscore, in order, each as
// DuckDB text (\N for NULL), joined by the unit separator (0x1F). (Hashing
// to_json of the same columns took twice as long; BENCHMARKS.md.)
func HashedSelect(ctx context.Context, conn *sql.Conn, query, partitionKey string) (string, error) {
	cols, err := duck.DescribeQuery(ctx, conn, query)
	if err != nil {
		return "", err
	}
	if len(duck.Missing(cols, partitionKey)) > 0 {
		return "", fmt.Errorf("does not output %s", partitionKey)
	}
	var business, lineageCols, fields []string
	for _, c := range cols {
		if c.Name == "record_hash" {
			return "", fmt.Errorf("must not output record_hash: the framework computes it")
		}
		if strings.HasPrefix(c.Name, "_") {
			lineageCols = append(lineageCols, duck.Ident(c.Name))
			continue
		}
		business = append(business, duck.Ident(c.Name))
		fields = append(fields, "coalesce(CAST("+duck.Ident(c.Name)+" AS VARCHAR), '\\N')")
	}
	sel := append(business, "sha256(concat_ws(chr(31), "+strings.Join(fields, ", ")+")) AS record_hash")
	sel = append(sel, lineageCols...)
	return fmt.Sprintf("SELECT %s FROM (%s\n)", strings.Join(sel, ", "), query), nil
}

// write replaces the table's scope with src, retrying lost commit races.
func write(ctx context.Context, conn *sql.Conn, l *lake.Lake, def lake.TableDef, src string, scope lake.Scope, stageDir string, commits map[string]lake.Commit) error {
	return lake.Retry(ctx, func() error {
		c, err := l.Write(ctx, conn, def, src, scope, stageDir)
		if err != nil {
			return err
		}
		commits[def.ID.String()] = c
		return nil
	})
}

func execf(ctx context.Context, conn *sql.Conn, format string, args ...any) error {
	_, err := conn.ExecContext(ctx, fmt.Sprintf(format, args...))
	return err
}

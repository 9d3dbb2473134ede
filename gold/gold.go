// Package gold is the silver -> gold job for one partition: run each gold
// table's SQL over the partition's silver rows and MERGE the result into the
// table's current rows inside DuckDB, then replace the touched partitions
// (or the whole current-state table) in one snapshot.
package gold

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/medallionlake/medallion/domains"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
)

// Result describes one gold run.
type Result struct {
	// GoldRecords is the number of rows the gold SQL produced, all tables.
	GoldRecords int64
	Commits     map[string]lake.Commit
}

// Run merges one partition into the domain's gold tables, in the order of
// the domain's YAML. It expects the silver_<table> TEMP tables the silver
// job left on conn, and leaves gold_<table> (the merged rows) for the next
// table's SQL.
//
// A lost commit race restarts the whole job, not just the table: a later
// table (signups_daily) is computed from an earlier one (users_current),
// so it must be recomputed from freshly staged rows. Tables already written
// are unchanged on the second pass and commit nothing.
//
// With an exporter, every table marked export: true is mirrored into
// PostgreSQL after its commit (whether or not the commit changed anything,
// so an export that failed earlier catches up).
func Run(ctx context.Context, conn *sql.Conn, l *lake.Lake, exp *Exporter, d domains.Domain, date medtype.Date, stageDir string) (Result, error) {
	var res Result
	err := lake.Retry(ctx, func() error {
		res = Result{Commits: map[string]lake.Commit{}}
		for _, g := range d.Gold {
			n, c, err := mergeTable(ctx, conn, l, exp, d, g, date, stageDir)
			if err != nil {
				return err
			}
			res.GoldRecords += n
			res.Commits[lake.TableID{Namespace: string(medtype.LayerGold), Name: g.Table}.String()] = c
		}
		return nil
	})
	return res, err
}

// mergeTable runs one gold SELECT, merges it into the table's current rows
// and writes the result; it returns the SELECT's row count.
func mergeTable(ctx context.Context, conn *sql.Conn, l *lake.Lake, exp *Exporter, d domains.Domain, g domains.GoldQuery, date medtype.Date, stageDir string) (int64, lake.Commit, error) {
	src := "gold_src_" + g.Table
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %s AS %s", src, g.SQL)); err != nil {
		return 0, lake.Commit{}, fmt.Errorf("%s gold/%s.sql: %w", d.Name, g.Table, err)
	}
	cols, err := duck.Describe(ctx, conn, src)
	if err != nil {
		return 0, lake.Commit{}, err
	}
	if err := check(g, cols); err != nil {
		return 0, lake.Commit{}, fmt.Errorf("%s gold/%s.sql: %w", d.Name, g.Table, err)
	}
	n, err := duck.Count(ctx, conn, src)
	if err != nil {
		return 0, lake.Commit{}, err
	}
	def := lake.TableDef{ID: lake.TableID{Namespace: string(medtype.LayerGold), Name: g.Table}, SortBy: g.MergeKeys}
	scope := lake.Scope{}
	if g.Mode == "partition" {
		def.PartitionColumn = g.PartitionColumn
		if scope, err = partitionScope(ctx, conn, src, g.PartitionColumn, d.PartitionKey, date); err != nil {
			return 0, lake.Commit{}, err
		}
	}
	target := "gold_" + g.Table
	base, err := stageTarget(ctx, conn, l, def.ID, scope, src, cols, target, stageDir)
	if err != nil {
		return 0, lake.Commit{}, err
	}
	scope.Base = &base // the MERGE keeps stored rows: they must still be live at the commit
	if _, err := conn.ExecContext(ctx, mergeSQL(g, cols, target, src)); err != nil {
		return 0, lake.Commit{}, fmt.Errorf("merge into %s: %w", def.ID, err)
	}
	c, err := l.Write(ctx, conn, def, target, scope, stageDir)
	if err != nil {
		return n, c, err
	}
	if g.Export {
		if exp == nil {
			return n, c, fmt.Errorf("gold table %s is marked export: true but no PostgreSQL export is configured", g.Table)
		}
		if _, err := exp.Export(ctx, conn, g, target, scope, c); err != nil {
			return n, c, err
		}
	}
	return n, c, nil
}

func check(g domains.GoldQuery, cols []duck.Column) error {
	for _, k := range duck.Missing(cols, g.MergeKeys...) {
		return fmt.Errorf("merge key %s is not an output column", k)
	}
	if g.VersionColumn != "" && len(duck.Missing(cols, g.VersionColumn)) > 0 {
		return fmt.Errorf("version_column %s is not an output column", g.VersionColumn)
	}
	return nil
}

// partitionScope is every partition the rows touch, plus the job's own
// partition when the table is partitioned by the domain's partition key (so
// a day that now produces no rows is emptied).
func partitionScope(ctx context.Context, conn *sql.Conn, src, column, domainKey string, date medtype.Date) (lake.Scope, error) {
	scope := lake.Scope{Column: column}
	if column == domainKey {
		scope.Dates = append(scope.Dates, date)
	}
	rows, err := conn.QueryContext(ctx, fmt.Sprintf("SELECT DISTINCT CAST(%s AS VARCHAR) FROM %s ORDER BY 1", duck.Ident(column), src))
	if err != nil {
		return scope, fmt.Errorf("partitions of %s: %w", src, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			return scope, err
		}
		if !v.Valid {
			return scope, fmt.Errorf("%s has rows without %s", src, column)
		}
		d, err := medtype.ParseDate(v.String)
		if err != nil {
			return scope, err
		}
		if !slices.Contains(scope.Dates, d) {
			scope.Dates = append(scope.Dates, d)
		}
	}
	return scope, rows.Err()
}

// stageTarget loads the table's current rows in scope into the TEMP table
// target (empty, shaped like src, when there are none) and returns the
// files they came from.
func stageTarget(ctx context.Context, conn *sql.Conn, l *lake.Lake, id lake.TableID, scope lake.Scope, src string, cols []duck.Column, target, stageDir string) (lake.Base, error) {
	base, err := l.ScopeFiles(ctx, id, scope)
	if err != nil {
		return base, err
	}
	// A damaged or missing file of a partitioned table is left out: mode
	// partition makes the scope's rows exactly src's, so the write repairs
	// it. A current-state table's rows come only from its stored rows.
	files, damaged, err := l.Intact(ctx, id, base.Files)
	if err != nil {
		return base, fmt.Errorf("stage %s: %w", id, err)
	}
	if len(damaged) > 0 && scope.Column == "" {
		return base, fmt.Errorf("stage %s: a live file is damaged (%s); its rows cannot be rebuilt from one partition's bronze", id, damaged[0])
	}
	from := src + " WHERE false"
	if len(files) > 0 {
		paths, err := l.Fetch(ctx, files, stageDir)
		if err != nil {
			return base, fmt.Errorf("stage %s: %w", id, err)
		}
		if from, err = l.Relation(ctx, conn, id, lake.Snapshot{}, paths); err != nil {
			return base, fmt.Errorf("stage %s: %w", id, err)
		}
	}
	have, err := duck.DescribeQuery(ctx, conn, "SELECT * FROM "+from)
	if err != nil {
		return base, fmt.Errorf("stage %s: %w", id, err)
	}
	_, err = conn.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %s AS SELECT %s FROM %s", target, asColumns(cols, have), from))
	if err != nil {
		return base, fmt.Errorf("stage %s: %w", id, err)
	}
	return base, nil
}

// asColumns selects the stored rows with the SQL's columns: a column the
// SQL added reads as NULL, and one it widened is cast, so that merging and
// writing evolve the table. A column the SQL dropped is left out, and the
// write refuses that change.
func asColumns(cols, have []duck.Column) string {
	present := map[string]bool{}
	for _, c := range have {
		present[c.Name] = true
	}
	sel := make([]string, len(cols))
	for i, c := range cols {
		v := "NULL"
		if present[c.Name] {
			v = duck.Ident(c.Name)
		}
		sel[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", v, c.Type, duck.Ident(c.Name))
	}
	return strings.Join(sel, ", ")
}

// mergeSQL inserts new keys and updates rows whose values differ; in mode
// current only rows newer by version_column replace stored ones, and in
// mode partition rows of the scope the source no longer produces are
// deleted.
func mergeSQL(g domains.GoldQuery, cols []duck.Column, target, src string) string {
	var on, differ, set, names, values []string
	for _, c := range cols {
		col := duck.Ident(c.Name)
		names = append(names, col)
		values = append(values, "s."+col)
		if slices.Contains(g.MergeKeys, c.Name) {
			on = append(on, fmt.Sprintf("t.%s IS NOT DISTINCT FROM s.%s", col, col))
			continue
		}
		differ = append(differ, fmt.Sprintf("t.%s IS DISTINCT FROM s.%s", col, col))
		set = append(set, fmt.Sprintf("%s = s.%s", col, col))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "MERGE INTO %s AS t USING %s AS s ON %s\n", target, src, strings.Join(on, " AND "))
	if len(set) > 0 {
		cond := "(" + strings.Join(differ, " OR ") + ")"
		if g.VersionColumn != "" {
			v := duck.Ident(g.VersionColumn)
			cond = fmt.Sprintf("s.%s > t.%s AND %s", v, v, cond)
		}
		fmt.Fprintf(&b, "WHEN MATCHED AND %s THEN UPDATE SET %s\n", cond, strings.Join(set, ", "))
	}
	fmt.Fprintf(&b, "WHEN NOT MATCHED THEN INSERT (%s) VALUES (%s)\n", strings.Join(names, ", "), strings.Join(values, ", "))
	if g.Mode == "partition" {
		b.WriteString("WHEN NOT MATCHED BY SOURCE THEN DELETE\n")
	}
	return b.String()
}

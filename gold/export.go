package gold

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medallionlake/medallion/domains"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/lake"
)

// Exporter mirrors gold tables into PostgreSQL (the warehouse load of the
// platform Medallion replaces), so BI tools and PostgREST can read gold.
// Each export is one transaction that makes the PostgreSQL rows of the
// written scope equal to the gold rows: idempotent, like the gold MERGE.
type Exporter struct {
	pool   *pgxpool.Pool
	schema string
}

// OpenExporter connects and creates the schema.
func OpenExporter(ctx context.Context, url, schema string) (*Exporter, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("export.postgres.url: %w", err)
	}
	e := &Exporter{pool: pool, schema: schema}
	if err := e.create(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return e, nil
}

// create makes the schema and the export log, one process at a time.
func (e *Exporter) create(ctx context.Context) error {
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("export to postgres: %w", err)
	}
	defer tx.Rollback(ctx)
	for _, q := range []string{
		"SELECT pg_advisory_xact_lock(hashtext('medallion export setup'))",
		"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{e.schema}.Sanitize(),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (table_name text, scope text, table_uuid text NOT NULL,
			sequence_number bigint NOT NULL, exported_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, scope))`, e.exported()),
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("export to postgres: create schema %s: %w", e.schema, err)
		}
	}
	return tx.Commit(ctx)
}

// Close closes the pool.
func (e *Exporter) Close() { e.pool.Close() }

// Table is the PostgreSQL table a gold table is exported to.
func (e *Exporter) Table(gold string) string { return pgx.Identifier{e.schema, gold}.Sanitize() }

var pgDecimal = regexp.MustCompile(`^DECIMAL\((\d+),\s*(\d+)\)$`)

func pgType(duckType string) (string, error) {
	switch duckType {
	case "VARCHAR":
		return "text", nil
	case "BIGINT", "UINTEGER":
		return "bigint", nil
	case "INTEGER", "SMALLINT", "TINYINT", "USMALLINT", "UTINYINT":
		return "integer", nil
	case "DOUBLE":
		return "double precision", nil
	case "FLOAT":
		return "real", nil
	case "BOOLEAN":
		return "boolean", nil
	case "DATE":
		return "date", nil
	case "TIMESTAMP":
		return "timestamp", nil
	case "TIMESTAMP WITH TIME ZONE":
		return "timestamptz", nil
	}
	if m := pgDecimal.FindStringSubmatch(duckType); m != nil {
		return "numeric(" + m[1] + "," + m[2] + ")", nil
	}
	return "", fmt.Errorf("no PostgreSQL type for DuckDB type %s", duckType)
}

// Export makes the PostgreSQL rows of scope equal to the rows of the DuckDB
// relation src (the gold table's content for that scope after the merge,
// as of the commit at). Rows outside scope are untouched; in mode current
// nothing is deleted.
//
// Exports apply in commit order: each partition of scope (or the whole
// table) records the sequence number it was last exported at, and an
// export older than that leaves it alone, so a worker that committed first
// but exports last never overwrites a newer export.
func (e *Exporter) Export(ctx context.Context, conn *sql.Conn, g domains.GoldQuery, src string, scope lake.Scope, at lake.Commit) (int64, error) {
	cols, err := duck.Describe(ctx, conn, src)
	if err != nil {
		return 0, err
	}
	table := e.Table(g.Table)
	var defs, names, casts, set, differ, keyMatch []string
	for _, c := range cols {
		t, err := pgType(c.Type)
		if err != nil {
			return 0, fmt.Errorf("export %s: column %s: %w", g.Table, c.Name, err)
		}
		col := pgx.Identifier{c.Name}.Sanitize()
		defs = append(defs, col+" "+t)
		names = append(names, col)
		casts = append(casts, fmt.Sprintf("%s::%s", col, t))
		if slices.Contains(g.MergeKeys, c.Name) {
			keyMatch = append(keyMatch, fmt.Sprintf("t.%s IS NOT DISTINCT FROM s.%s", col, col))
			continue
		}
		set = append(set, fmt.Sprintf("%s = EXCLUDED.%s", col, col))
		differ = append(differ, fmt.Sprintf("t.%s IS DISTINCT FROM EXCLUDED.%s", col, col))
	}
	keys := make([]string, len(g.MergeKeys))
	for i, k := range g.MergeKeys {
		keys[i] = pgx.Identifier{k}.Sanitize()
	}

	// Read the rows as DuckDB text; PostgreSQL casts them on the way in.
	rows, err := conn.QueryContext(ctx, "SELECT COLUMNS(*)::VARCHAR FROM "+src)
	if err != nil {
		return 0, fmt.Errorf("export %s: %w", g.Table, err)
	}
	var data [][]any
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return 0, err
		}
		row := make([]any, len(cols))
		for i, v := range vals {
			if v.Valid {
				row[i] = v.String
			}
		}
		data = append(data, row)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}

	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("export %s: %w", g.Table, err)
	}
	defer tx.Rollback(ctx)
	// One export of a table at a time, from any process: the order check
	// below and the creation of the table must not interleave.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "medallion export "+table); err != nil {
		return 0, fmt.Errorf("export %s: lock: %w", g.Table, err)
	}
	stmts := []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s, CONSTRAINT %s UNIQUE NULLS NOT DISTINCT (%s))", table, strings.Join(defs, ", "),
			pgx.Identifier{g.Table + "_merge_key"}.Sanitize(), strings.Join(keys, ", ")),
		fmt.Sprintf("CREATE TEMP TABLE medallion_export (%s) ON COMMIT DROP", textColumns(names)),
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return 0, fmt.Errorf("export %s: %w", g.Table, err)
		}
	}
	plain := make([]string, len(cols))
	for i, c := range cols {
		plain[i] = c.Name
	}
	dates, err := e.newer(ctx, tx, g.Table, scope, at)
	if err != nil || len(dates) == 0 {
		return 0, err // an export of a newer commit holds all of scope
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"medallion_export"}, plain, pgx.CopyFromRows(data)); err != nil {
		return 0, fmt.Errorf("export %s: copy: %w", g.Table, err)
	}
	inScope := ""
	if scope.Column != "" {
		col := pgx.Identifier{scope.Column}.Sanitize()
		del := fmt.Sprintf(`DELETE FROM %s t WHERE t.%s = ANY($1::date[]) AND NOT EXISTS (
			SELECT 1 FROM (SELECT %s FROM medallion_export) s WHERE %s)`,
			table, col, strings.Join(casts, ", "), strings.Join(keyMatch, " AND "))
		if _, err := tx.Exec(ctx, del, dates); err != nil {
			return 0, fmt.Errorf("export %s: delete: %w", g.Table, err)
		}
		inScope = fmt.Sprintf(" WHERE %s::date = ANY($1::date[])", col)
	}
	upsert := fmt.Sprintf("INSERT INTO %s AS t (%s) SELECT %s FROM medallion_export%s ON CONFLICT (%s) ", table, strings.Join(names, ", "), strings.Join(casts, ", "), inScope, strings.Join(keys, ", "))
	if len(set) == 0 {
		upsert += "DO NOTHING"
	} else {
		upsert += fmt.Sprintf("DO UPDATE SET %s WHERE %s", strings.Join(set, ", "), strings.Join(differ, " OR "))
	}
	var args []any
	if scope.Column != "" {
		args = append(args, dates)
	}
	if _, err := tx.Exec(ctx, upsert, args...); err != nil {
		return 0, fmt.Errorf("export %s: upsert: %w", g.Table, err)
	}
	if err := e.record(ctx, tx, g.Table, dates, at); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("export %s: commit: %w", g.Table, err)
	}
	return int64(len(data)), nil
}

// exported is the table that records, per gold table and partition ("" for
// a whole table), the commit each was last exported at.
func (e *Exporter) exported() string {
	return pgx.Identifier{e.schema, "medallion_exported"}.Sanitize()
}

// newer returns the keys of
// scope (its dates; [""] for a whole table) not yet exported at a commit
// as new as at.
func (e *Exporter) newer(ctx context.Context, tx pgx.Tx, gold string, scope lake.Scope, at lake.Commit) ([]string, error) {
	keys := []string{""}
	if scope.Column != "" {
		keys = keys[:0]
		for _, d := range scope.Dates {
			keys = append(keys, d.String())
		}
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT scope FROM %s WHERE table_name = $1 AND scope = ANY($2)
		AND table_uuid = $3 AND sequence_number >= $4`, e.exported()), gold, keys, at.TableUUID, at.Sequence)
	if err != nil {
		return nil, fmt.Errorf("export %s: read the export log: %w", gold, err)
	}
	newer, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("export %s: read the export log: %w", gold, err)
	}
	return slices.DeleteFunc(keys, func(k string) bool { return slices.Contains(newer, k) }), nil
}

// record notes that keys were exported at the commit at.
func (e *Exporter) record(ctx context.Context, tx pgx.Tx, gold string, keys []string, at lake.Commit) error {
	_, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (table_name, scope, table_uuid, sequence_number)
		SELECT $1, k, $3, $4 FROM unnest($2::text[]) k
		ON CONFLICT (table_name, scope) DO UPDATE SET table_uuid = EXCLUDED.table_uuid,
			sequence_number = EXCLUDED.sequence_number, exported_at = now()`, e.exported()), gold, keys, at.TableUUID, at.Sequence)
	if err != nil {
		return fmt.Errorf("export %s: record the export: %w", gold, err)
	}
	return nil
}

func textColumns(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + " text"
	}
	return strings.Join(out, ", ")
}

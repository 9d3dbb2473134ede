package lake

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/storage"
)

// TableDef says how a DuckDB relation is stored as an Iceberg table.
type TableDef struct {
	ID TableID
	// PartitionColumn is a DATE column the table is identity-partitioned
	// by; "" for an unpartitioned (current-state) table.
	PartitionColumn string
	// SortBy orders the rows inside the written file.
	SortBy []string
}

// Scope is the part of a table a write replaces: the partitions of Column
// listed in Dates, or the whole table when Column is "".
type Scope struct {
	Column string
	Dates  []medtype.Date
	// Base, when set, is the scope's live files the rows were computed
	// from (ScopeFiles). Write then fails with ErrConflict if another
	// writer has changed them since: the table's commit check only covers
	// the moments between Write's own load and commit, and a MERGE into
	// stored rows staged before that would overwrite the other writer's
	// rows (Retry recomputes them from the fresh ones).
	Base *Base
}

// Base is what a write's rows were computed from: the live files of a
// scope at one snapshot.
type Base struct {
	Files []DataFile
}

// ScopeFiles plans the live files of scope, all at the table's current
// snapshot (none for a missing table), as the Base of a write.
func (l *Lake) ScopeFiles(ctx context.Context, id TableID, scope Scope) (Base, error) {
	t, err := l.loadIfExists(ctx, id)
	if t == nil {
		return Base{}, err
	}
	live, err := planParts(ctx, t, scope.partitions())
	if err != nil {
		return Base{}, fmt.Errorf("plan %s: %w", id, err)
	}
	return Base{Files: slices.Concat(live...)}, nil
}

// planParts plans the live files of each partition (a snapshot a maintain
// expired meanwhile is a conflict).
func planParts(ctx context.Context, t *table.Table, parts []*Partition) ([][]DataFile, error) {
	live := make([][]DataFile, len(parts))
	for i, p := range parts {
		var err error
		if live[i], err = planFiles(ctx, t, p, Snapshot{}); err != nil {
			return nil, asConflict(err)
		}
	}
	return live, nil
}

// value is the partition's date as a fingerprint's key ("" for the whole
// table).
func (p *Partition) value() string {
	if p == nil {
		return ""
	}
	return p.Date.String()
}

// partitions are the scope's partitions, each once; one nil for the
// whole table.
func (s Scope) partitions() []*Partition {
	if s.Column == "" {
		return []*Partition{nil}
	}
	var parts []*Partition
	seen := map[medtype.Date]bool{}
	for _, d := range s.Dates {
		if !seen[d] {
			seen[d] = true
			parts = append(parts, &Partition{Column: s.Column, Date: d})
		}
	}
	return parts
}

// unchanged reports whether live, the scope's files now, are still the
// base's (always, without a base).
func (b *Base) unchanged(live [][]DataFile) bool {
	if b == nil {
		return true
	}
	return slices.Equal(uris(slices.Concat(live...)), uris(b.Files))
}

// uris are the files' URIs, sorted.
func uris(files []DataFile) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.URI
	}
	slices.Sort(out)
	return out
}

// PartitionScope is the scope of one date partition.
func PartitionScope(column string, date medtype.Date) Scope {
	return Scope{Column: column, Dates: []medtype.Date{date}}
}

// Write makes the rows of the DuckDB relation src the content of scope,
// in one Iceberg snapshot: every partition in scope gets exactly src's rows
// of that date (none if src has none). Rows of src outside scope are an
// error. Each data file is named after a fingerprint of its rows, so
// writing the same rows again finds the files live and commits nothing.
// stageDir holds temporary files.
//
// Write is a single attempt; it fails with ErrConflict when another writer
// committed to the table meanwhile. Wrap it (and whatever computed src) in
// Retry.
func (l *Lake) Write(ctx context.Context, conn *sql.Conn, def TableDef, src string, scope Scope, stageDir string) (Commit, error) {
	cols, err := duck.Describe(ctx, conn, src)
	if err != nil {
		return Commit{}, err
	}
	t, err := l.ensureTable(ctx, def, cols)
	if err != nil {
		return Commit{}, err
	}
	if scope.Column != def.PartitionColumn {
		return Commit{}, fmt.Errorf("write %s: scope column %q is not the partition column %q", def.ID, scope.Column, def.PartitionColumn)
	}
	prints, err := fingerprints(ctx, conn, src, cols, scope.Column)
	if err != nil {
		return Commit{}, err
	}
	parts, live, err := planScope(ctx, t, def.ID, scope, prints)
	if err != nil {
		return Commit{}, err
	}
	var (
		oldURIs, newURIs []string
		rows             int64
	)
	for i, p := range parts {
		fp := prints[p.value()]
		rows += fp.rows
		have, want, err := l.replace(ctx, conn, def, src, p, live[i], fp, stageDir)
		if err != nil {
			return Commit{}, err
		}
		oldURIs = append(oldURIs, have...)
		newURIs = append(newURIs, want...)
	}
	if len(oldURIs) == 0 && len(newURIs) == 0 {
		return Commit{SnapshotID: snapshotID(t), Sequence: sequence(t), TableUUID: t.Metadata().TableUUID().String()}, nil
	}
	tx := t.NewTransaction()
	if err := tx.ReplaceDataFiles(ctx, oldURIs, newURIs, l.snapshotProps(rows)); err != nil {
		return Commit{}, asConflict(fmt.Errorf("replace files of %s: %w", def.ID, err))
	}
	nt, err := tx.Commit(ctx)
	if err != nil {
		return Commit{}, asConflict(fmt.Errorf("commit %s: %w", def.ID, err))
	}
	return Commit{SnapshotID: snapshotID(nt), Sequence: sequence(nt), TableUUID: nt.Metadata().TableUUID().String(), Changed: true, Replaced: len(oldURIs)}, nil
}

// planScope is the scope's partitions and the live files of each; it
// refuses rows outside the scope, and fails with ErrConflict when the
// scope's files are no longer its base.
func planScope(ctx context.Context, t *table.Table, id TableID, scope Scope, prints map[string]print) ([]*Partition, [][]DataFile, error) {
	parts := scope.partitions()
	if scope.Column != "" {
		inScope := map[string]bool{}
		for _, p := range parts {
			inScope[p.value()] = true
		}
		for value := range prints {
			if !inScope[value] {
				return nil, nil, fmt.Errorf("write %s: the rows include %s = %s, outside the partitions written (%v)", id, scope.Column, value, scope.Dates)
			}
		}
	}
	live, err := planParts(ctx, t, parts)
	if err != nil {
		return nil, nil, err
	}
	if !scope.Base.unchanged(live) {
		return nil, nil, fmt.Errorf("%w: %s changed after its rows were read for this write", ErrConflict, id)
	}
	return parts, live, nil
}

// replace writes src's rows of partition p (the whole table when nil) as a
// new data file unless the partition's live files already hold them, and
// returns the URIs the commit removes and adds (none when it holds them).
func (l *Lake) replace(ctx context.Context, conn *sql.Conn, def TableDef, src string, p *Partition, live []DataFile, fp print, stageDir string) (have, want []string, err error) {
	for _, f := range live {
		have = append(have, f.URI)
	}
	same, err := l.holds(ctx, live, fp)
	switch {
	case err != nil:
		return nil, nil, err
	case same && (!l.force || fp.rows == 0):
		return nil, nil, nil // this partition already holds exactly these rows
	case fp.rows == 0:
		return have, nil, nil
	}
	key, err := l.freshKey(ctx, l.dataKey(def, p, fp.hash), have)
	if err != nil {
		return nil, nil, err
	}
	rel := src
	if p != nil {
		rel = fmt.Sprintf("(SELECT * FROM %s WHERE %s = DATE %s)", src, duck.Ident(p.Column), duck.Literal(p.value()))
	}
	if err := l.writeFile(ctx, conn, def, rel, key, stageDir); err != nil {
		return nil, nil, err
	}
	return have, []string{l.bucket.URI(key)}, nil
}

// dataKey is warehouse/<ns>/<table>/data/[<col>=<date>/]<fingerprint>.parquet
// (freshKey may add -<suffix> before .parquet).
func (l *Lake) dataKey(def TableDef, partition *Partition, fp string) string {
	dir := fmt.Sprintf("%s/%s/%s/data/", WarehousePrefix, def.ID.Namespace, def.ID.Name)
	if partition != nil {
		dir += partition.Column + "=" + partition.Date.String() + "/"
	}
	return dir + fp + ".parquet"
}

// freshKey returns key, or a name of its own when the key is live (a
// damaged or forced rewrite: one snapshot cannot remove and add the same
// file) or an object already has it (a file of an expired snapshot that
// maintain has not deleted yet). Write never references a name again, so
// maintain deletes what only expired snapshots referenced without racing
// a writer.
func (l *Lake) freshKey(ctx context.Context, key string, live []string) (string, error) {
	_, err := l.bucket.Stat(ctx, key)
	switch {
	case errors.Is(err, storage.ErrNotFound) && !slices.Contains(live, l.bucket.URI(key)):
		return key, nil
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return "", fmt.Errorf("stat %s: %w", key, err)
	}
	return strings.TrimSuffix(key, ".parquet") + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".parquet", nil
}

// fingerprintOf is the fingerprint a data file's name carries.
func fingerprintOf(uri string) string {
	name := strings.TrimSuffix(path.Base(uri), ".parquet")
	fp, _, _ := strings.Cut(name, "-")
	return fp
}

// holds reports whether a partition's live files already are these rows:
// none for none, or one file of their fingerprint that is intact (it
// exists with the size and row count its manifest records). A damaged one
// does not count, so rewriting the partition repairs it.
func (l *Lake) holds(ctx context.Context, live []DataFile, fp print) (bool, error) {
	if fp.rows == 0 || len(live) != 1 {
		return fp.rows == 0 && len(live) == 0, nil
	}
	if fingerprintOf(live[0].URI) != fp.hash {
		return false, nil
	}
	_, problem, err := l.problemOf(ctx, live[0])
	return problem == "", err
}

func (l *Lake) tableLocation(id TableID) string {
	return strings.TrimSuffix(l.bucket.URI(fmt.Sprintf("%s/%s/%s", WarehousePrefix, id.Namespace, id.Name)), "/")
}

// writeFile has DuckDB write the Parquet file, then moves it into place: a
// rename on local storage, an upload on S3. Either way the object appears
// whole, and it is referenced only once the snapshot commits.
func (l *Lake) writeFile(ctx context.Context, conn *sql.Conn, def TableDef, src, key, stageDir string) error {
	tmp := filepath.Join(stageDir, filepath.Base(key))
	local, isLocal := l.bucket.(storage.Local)
	if isLocal {
		final, err := local.LocalPath(key)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
			return err
		}
		f, err := os.CreateTemp(filepath.Dir(final), "."+filepath.Base(final)+".tmp-*")
		if err != nil {
			return err
		}
		f.Close()
		tmp = f.Name()
		defer os.Remove(tmp)
	}
	query := "SELECT * FROM " + src
	if len(def.SortBy) > 0 {
		quoted := make([]string, len(def.SortBy))
		for i, c := range def.SortBy {
			quoted[i] = duck.Ident(c)
		}
		query += " ORDER BY " + strings.Join(quoted, ", ")
	}
	// zstd level 1: measured faster to write than the default level and still
	// smaller than snappy (BENCHMARKS.md).
	copySQL := fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)", query, duck.Literal(tmp))
	if _, err := conn.ExecContext(ctx, copySQL); err != nil {
		return fmt.Errorf("write %s: %w", def.ID, err)
	}
	if isLocal {
		final, _ := local.LocalPath(key)
		return os.Rename(tmp, final)
	}
	defer os.Remove(tmp)
	if err := storage.PutFile(ctx, l.bucket, key, tmp, nil); err != nil {
		return fmt.Errorf("upload %s data file: %w", def.ID, err)
	}
	return nil
}

type print struct {
	rows int64
	hash string
}

// fingerprints hashes the relation's content per value of column (one entry
// keyed "" when column is ""): the columns plus an order-independent
// combination (count, xor and sum) of each row's hash.
func fingerprints(ctx context.Context, conn *sql.Conn, src string, cols []duck.Column, column string) (map[string]print, error) {
	group, key := "", "''"
	if column != "" {
		key = "CAST(" + duck.Ident(column) + " AS VARCHAR)"
		group = " GROUP BY 1"
	}
	q := "SELECT " + key + ", count(*), coalesce(bit_xor(hash(t)), 0)::VARCHAR, coalesce(sum(hash(t)::HUGEINT), 0)::VARCHAR FROM " + src + " t" + group
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("fingerprint %s: %w", src, err)
	}
	defer rows.Close()
	out := map[string]print{}
	for rows.Next() {
		var (
			value    sql.NullString
			n        int64
			xor, sum string
		)
		if err := rows.Scan(&value, &n, &xor, &sum); err != nil {
			return nil, err
		}
		if !value.Valid {
			return nil, fmt.Errorf("fingerprint %s: %d rows have no %s", src, n, column)
		}
		if n == 0 {
			continue
		}
		h := sha256.New()
		for _, c := range cols {
			fmt.Fprintf(h, "%s %s\n", c.Name, c.Type)
		}
		fmt.Fprintf(h, "%d %s %s", n, xor, sum)
		out[value.String] = print{rows: n, hash: hex.EncodeToString(h.Sum(nil))[:32]}
	}
	return out, rows.Err()
}

// ensureTable creates the table on first write and evolves the schema of
// an existing one (or refuses the change, see evolution).
func (l *Lake) ensureTable(ctx context.Context, def TableDef, cols []duck.Column) (*table.Table, error) {
	schema, err := SchemaOf(cols)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", def.ID, err)
	}
	t, err := l.load(ctx, def.ID)
	if err == nil {
		if rebuilding(t) {
			t, err = replaceSchema(ctx, def.ID, t, schema)
		} else {
			t, err = evolve(ctx, def.ID, t, schema)
		}
		if err != nil {
			return nil, err
		}
		return pinProperties(ctx, def.ID, t)
	}
	if !errors.Is(err, catalog.ErrNoSuchTable) {
		return nil, fmt.Errorf("load table %s: %w", def.ID, err)
	}
	props, err := nameMapping(schema)
	if err != nil {
		return nil, err
	}
	maps.Copy(props, noRetry)
	maps.Copy(props, shortLog)
	opts := []catalog.CreateTableOpt{catalog.WithLocation(l.tableLocation(def.ID)), catalog.WithProperties(props)}
	if def.PartitionColumn != "" {
		field, ok := schema.FindFieldByName(def.PartitionColumn)
		if !ok || !field.Type.Equals(iceberg.PrimitiveTypes.Date) {
			return nil, fmt.Errorf("table %s: partition column %q must be a DATE column of the output", def.ID, def.PartitionColumn)
		}
		spec := iceberg.NewPartitionSpec(iceberg.PartitionField{SourceIDs: []int{field.ID}, FieldID: 1000, Name: def.PartitionColumn, Transform: iceberg.IdentityTransform{}})
		opts = append(opts, catalog.WithPartitionSpec(&spec))
	}
	t, err = l.cat.CreateTable(ctx, def.ID.ident(), schema, opts...)
	if errors.Is(err, catalog.ErrTableAlreadyExists) {
		return l.ensureTable(ctx, def, cols) // created concurrently
	}
	if err != nil {
		return nil, asConflict(fmt.Errorf("create table %s: %w", def.ID, err))
	}
	if l.fence != nil {
		return l.load(ctx, def.ID) // so that the first write is fenced too
	}
	return t, nil
}

// noRetry pins iceberg-go's own commit retry off (its default, 0, today).
// Medallion retries a lost commit by recomputing the whole partition
// (Retry), because a current-state table's new rows depend on the rows
// they replace; iceberg-go's retry would instead re-apply the same file
// swap onto the new base and merge two writers' files.
var noRetry = iceberg.Properties{table.CommitNumRetriesKey: "0"}

// shortLog keeps 20 previous metadata files in a table's metadata log,
// not Iceberg's default 100: the log was three quarters of every
// metadata.json (18 of 24 KB), which every query and maintain parses, and
// time travel reads snapshots, which the current metadata file holds.
var shortLog = iceberg.Properties{table.MetadataPreviousVersionsMaxKey: "20"}

// pinProperties sets, before Medallion writes to a table, the properties
// it relies on that the table lacks (an older Medallion's, or changed by
// hand): noRetry, shortLog unless the table sets its own, and the name
// mapping other engines need to read its files.
func pinProperties(ctx context.Context, id TableID, t *table.Table) (*table.Table, error) {
	props := iceberg.Properties{}
	if t.Properties()[table.CommitNumRetriesKey] != "0" {
		maps.Copy(props, noRetry)
	}
	if _, set := t.Properties()[table.MetadataPreviousVersionsMaxKey]; !set {
		maps.Copy(props, shortLog)
	}
	if t.NameMapping() == nil {
		m, err := nameMapping(t.Schema())
		if err != nil {
			return nil, err
		}
		maps.Copy(props, m)
	}
	if len(props) == 0 {
		return t, nil
	}
	tx := t.NewTransaction()
	if err := tx.SetProperties(props); err != nil {
		return nil, fmt.Errorf("table %s: pin its properties: %w", id, err)
	}
	return commit(ctx, id, "pin the properties of", tx)
}

var decimalType = regexp.MustCompile(`^DECIMAL\((\d+),\s*(\d+)\)$`)

// SchemaOf maps DuckDB columns to an Iceberg schema. Every column is
// optional: DuckDB's Parquet writer does not mark columns required, and
// Iceberg rejects a required column backed by an optional Parquet one.
func SchemaOf(cols []duck.Column) (*iceberg.Schema, error) {
	fields := make([]iceberg.NestedField, len(cols))
	for i, c := range cols {
		typ, err := icebergType(c.Type)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.Name, err)
		}
		fields[i] = iceberg.NestedField{ID: i + 1, Name: c.Name, Type: typ}
	}
	return iceberg.NewSchema(0, fields...), nil
}

func icebergType(t string) (iceberg.Type, error) {
	switch t {
	case "BOOLEAN":
		return iceberg.PrimitiveTypes.Bool, nil
	case "TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT":
		return iceberg.PrimitiveTypes.Int32, nil
	case "BIGINT", "UINTEGER":
		return iceberg.PrimitiveTypes.Int64, nil
	case "FLOAT":
		return iceberg.PrimitiveTypes.Float32, nil
	case "DOUBLE":
		return iceberg.PrimitiveTypes.Float64, nil
	case "VARCHAR":
		return iceberg.PrimitiveTypes.String, nil
	case "BLOB":
		return iceberg.PrimitiveTypes.Binary, nil
	case "DATE":
		return iceberg.PrimitiveTypes.Date, nil
	case "TIME":
		return iceberg.PrimitiveTypes.Time, nil
	case "TIMESTAMP":
		return iceberg.PrimitiveTypes.Timestamp, nil
	case "TIMESTAMP WITH TIME ZONE":
		return iceberg.PrimitiveTypes.TimestampTz, nil
	case "UUID":
		return iceberg.PrimitiveTypes.UUID, nil
	}
	if m := decimalType.FindStringSubmatch(t); m != nil {
		p, _ := strconv.Atoi(m[1])
		s, _ := strconv.Atoi(m[2])
		return iceberg.DecimalTypeOf(p, s), nil
	}
	return nil, fmt.Errorf("DuckDB type %s has no Iceberg equivalent here; cast it in the SQL (e.g. to VARCHAR, BIGINT or DECIMAL(p,s))", t)
}

package lake

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/storage"
)

// ErrSchemaChanged means the SQL's output changed a table's columns in a
// way Iceberg cannot evolve in place: a column dropped, renamed, narrowed
// or given another type. The table must be rebuilt from bronze.
var ErrSchemaChanged = errors.New("table schema changed")

// evolution compares a table's schema with the one the SQL now produces,
// by column name. New columns are added (optional, so the files written
// before read them as NULL) and the promotions Iceberg allows (int to long,
// float to double, a wider decimal) are applied; anything else is refused
// naming the column and both types.
func evolution(id TableID, have, want *iceberg.Schema) (adds, promotes []iceberg.NestedField, err error) {
	for _, w := range want.Fields() {
		h, ok := have.FindFieldByName(w.Name)
		switch {
		case !ok:
			adds = append(adds, w)
		case h.Type.Equals(w.Type):
		case promotable(h.Type, w.Type):
			promotes = append(promotes, w)
		default:
			return nil, nil, refuse(id, fmt.Sprintf("column %s is %s in the table but %s in the SQL", w.Name, h.Type, w.Type))
		}
	}
	for _, h := range have.Fields() {
		if _, ok := want.FindFieldByName(h.Name); !ok {
			return nil, nil, refuse(id, fmt.Sprintf("column %s (%s) is in the table but no longer in the SQL (dropped or renamed)", h.Name, h.Type))
		}
	}
	return adds, promotes, nil
}

func refuse(id TableID, what string) error {
	return fmt.Errorf("%w: %s: %s; Iceberg cannot change that in place. Rebuild the table from bronze with the new SQL: medallion backfill --rebuild --table %s --from FIRST_DATE --to LAST_DATE",
		ErrSchemaChanged, id, what, id)
}

// promotable reports whether Iceberg reads a column written as from with
// type to.
func promotable(from, to iceberg.Type) bool {
	_, err := iceberg.PromoteType(from, to)
	_, toBinary := to.(iceberg.BinaryType)
	return err == nil && !toBinary // string to binary changes what a reader gets
}

// evolve commits the schema changes a write needs, with the name mapping
// that lets other engines read Medallion's files (which carry no field
// ids) by column name.
func evolve(ctx context.Context, id TableID, t *table.Table, want *iceberg.Schema) (*table.Table, error) {
	adds, promotes, err := evolution(id, t.Schema(), want)
	if err != nil || len(adds)+len(promotes) == 0 {
		return t, err
	}
	mapping := t.NameMapping()
	if mapping == nil {
		mapping = t.Schema().NameMapping()
	}
	tx := t.NewTransaction()
	u := tx.UpdateSchema(true, false, table.WithNameMapping(mapping))
	for _, f := range adds {
		u.AddColumn([]string{f.Name}, f.Type, "", false, nil)
	}
	for _, f := range promotes {
		u.UpdateColumn([]string{f.Name}, table.ColumnUpdate{FieldType: iceberg.Optional[iceberg.Type]{Valid: true, Val: f.Type}})
	}
	if err := u.Commit(); err != nil {
		return nil, fmt.Errorf("evolve the schema of %s: %w", id, err)
	}
	return commit(ctx, id, "evolve the schema of", tx)
}

// nameMapping is the schema.name-mapping.default property of a new table.
func nameMapping(s *iceberg.Schema) (iceberg.Properties, error) {
	js, err := json.Marshal(s.NameMapping())
	if err != nil {
		return nil, err
	}
	return iceberg.Properties{table.DefaultNameMappingKey: string(js)}, nil
}

// Relation is the DuckDB relation of a table's data files (local copies,
// from Fetch) as of at, in the table's schema at that snapshot. A table
// whose schema evolved reads its files by column name, so a column the
// older files lack reads as NULL and a promoted one is cast.
func (l *Lake) Relation(ctx context.Context, conn *sql.Conn, id TableID, at Snapshot, paths []string) (string, error) {
	t, err := l.Load(ctx, id)
	if err != nil {
		return "", err
	}
	return relation(ctx, conn, id, t, at, paths)
}

func relation(ctx context.Context, conn *sql.Conn, id TableID, t *table.Table, at Snapshot, paths []string) (string, error) {
	if len(t.Metadata().Schemas()) == 1 {
		return duck.ReadParquet(paths, false), nil // every file has the one schema
	}
	schema := schemaAt(t, at)
	union := strings.TrimSuffix(duck.ReadParquet(paths, false), ")") + ", union_by_name = true)"
	cols, err := duck.DescribeQuery(ctx, conn, "SELECT * FROM "+union)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", id, err)
	}
	present := map[string]bool{}
	for _, c := range cols {
		present[c.Name] = true
	}
	var sel []string
	for _, f := range schema.Fields() {
		typ, err := DuckType(f.Type)
		if err != nil {
			return "", fmt.Errorf("table %s: %w", id, err)
		}
		src := "NULL"
		if present[f.Name] {
			src = duck.Ident(f.Name)
		}
		sel = append(sel, fmt.Sprintf("CAST(%s AS %s) AS %s", src, typ, duck.Ident(f.Name)))
	}
	return "(SELECT " + strings.Join(sel, ", ") + " FROM " + union + ")", nil
}

// Reader is one table as of a snapshot, its metadata read once.
type Reader struct {
	l  *Lake
	id TableID
	t  *table.Table
	at Snapshot
}

// Reader reads a table's metadata; a missing table is an error wrapping
// catalog.ErrNoSuchTable.
func (l *Lake) Reader(ctx context.Context, id TableID, at Snapshot) (*Reader, error) {
	t, err := l.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Reader{l: l, id: id, t: t, at: at}, nil
}

// Version names the table's state: its metadata file.
func (r *Reader) Version() string { return r.t.MetadataLocation() }

// PartitionColumn is the date column the table is partitioned by, or "".
func (r *Reader) PartitionColumn() string {
	col, _ := partitionColumn(r.t)
	return col
}

// Columns are the table's column names at the snapshot.
func (r *Reader) Columns() []string {
	var out []string
	for _, f := range schemaAt(r.t, r.at).Fields() {
		out = append(out, f.Name)
	}
	return out
}

// Schema is the table's columns at the snapshot, with their DuckDB types
// and whether each is required (never NULL).
func (r *Reader) Schema() ([]duck.Column, []bool, error) {
	fields := schemaAt(r.t, r.at).Fields()
	cols, required := make([]duck.Column, len(fields)), make([]bool, len(fields))
	for i, f := range fields {
		t, err := DuckType(f.Type)
		if err != nil {
			return nil, nil, fmt.Errorf("table %s: %w", r.id, err)
		}
		cols[i], required[i] = duck.Column{Name: f.Name, Type: t}, f.Required
	}
	return cols, required, nil
}

// Scan is the DuckDB relation of the table's rows: its live data files
// (only those that may hold rows inside within, when it is set), staged
// inside stage (storage.Stage: hard links or downloads, so that a reader
// confined to stage reads them), in its schema at the snapshot, or a
// zero-row relation with its columns when no file is left.
func (r *Reader) Scan(ctx context.Context, conn *sql.Conn, stage string, within *DateRange) (string, error) {
	files, err := planWithin(ctx, r.t, within, r.at)
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return emptyRelation(r.id, schemaAt(r.t, r.at))
	}
	keys := make([]string, len(files))
	for i, f := range files {
		if keys[i], err = storage.KeyOf(r.l.bucket, f.URI); err != nil {
			return "", err
		}
	}
	paths, err := storage.Stage(ctx, r.l.bucket, keys, stage)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", r.id, err)
	}
	return relation(ctx, conn, r.id, r.t, r.at, paths)
}

// emptyRelation is a zero-row SELECT with a schema's columns.
func emptyRelation(id TableID, schema *iceberg.Schema) (string, error) {
	var cols []string
	for _, f := range schema.Fields() {
		t, err := DuckType(f.Type)
		if err != nil {
			return "", fmt.Errorf("table %s: %w", id, err)
		}
		cols = append(cols, "NULL::"+t+" AS "+duck.Ident(f.Name))
	}
	return "(SELECT " + strings.Join(cols, ", ") + " WHERE false)", nil
}

// schemaAt is the schema of the snapshot at selects.
func schemaAt(t *table.Table, at Snapshot) *iceberg.Schema {
	var snap *table.Snapshot
	switch {
	case at.ID != 0:
		snap = t.SnapshotByID(at.ID)
	case !at.AsOf.IsZero():
		for _, s := range t.Metadata().Snapshots() {
			if s.TimestampMs <= at.AsOf.UnixMilli() && (snap == nil || s.TimestampMs > snap.TimestampMs) {
				snap = &s
			}
		}
	}
	if snap != nil && snap.SchemaID != nil {
		if s, ok := t.Schemas()[*snap.SchemaID]; ok {
			return s
		}
	}
	return t.Schema()
}

// DuckType is the DuckDB type a column of Iceberg type t reads as.
func DuckType(t iceberg.Type) (string, error) {
	if v, ok := t.(iceberg.DecimalType); ok {
		return fmt.Sprintf("DECIMAL(%d,%d)", v.Precision(), v.Scale()), nil
	}
	if d, ok := duckTypes[t.String()]; ok {
		return d, nil
	}
	return "", fmt.Errorf("no DuckDB type for Iceberg type %s", t)
}

var duckTypes = map[string]string{
	"boolean": "BOOLEAN", "int": "INTEGER", "long": "BIGINT", "float": "FLOAT", "double": "DOUBLE",
	"string": "VARCHAR", "binary": "BLOB", "date": "DATE", "time": "TIME", "timestamp": "TIMESTAMP",
	"timestamptz": "TIMESTAMPTZ", "uuid": "UUID",
}

package lake

import (
	"context"
	"fmt"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// rebuildKey marks a table emptied by Rebuild whose next write sets its
// schema to whatever the SQL produces.
const rebuildKey = "medallion.rebuild"

// Rebuild starts a new version of a table, for a schema change Iceberg
// cannot make in place: one snapshot removes every data file, and the
// table is marked so that its next write replaces the schema with the
// SQL's. The caller then rewrites every partition from bronze (backfill
// --rebuild). The old snapshots keep the old schema and rows for time
// travel until they expire. It returns how many files left the table.
func (l *Lake) Rebuild(ctx context.Context, id TableID) (int, error) {
	var removed int
	err := Retry(ctx, func() error {
		t, err := l.Load(ctx, id)
		if err != nil {
			return err
		}
		files, err := planFiles(ctx, t, nil, Snapshot{})
		if err != nil {
			return err
		}
		tx := t.NewTransaction()
		uris := make([]string, len(files))
		for i, f := range files {
			uris[i] = f.URI
		}
		if len(uris) > 0 {
			if err := tx.ReplaceDataFiles(ctx, uris, nil, l.snapshotProps(0)); err != nil {
				return fmt.Errorf("rebuild %s: %w", id, err)
			}
		}
		if err := tx.SetProperties(iceberg.Properties{rebuildKey: "true"}); err != nil {
			return err
		}
		if _, err := commit(ctx, id, "rebuild", tx); err != nil {
			return err
		}
		removed = len(uris)
		return nil
	})
	return removed, err
}

// replaceSchema gives a table marked by Rebuild the SQL's schema: columns
// the SQL no longer has are dropped, new ones added and changed types set,
// which Iceberg allows here because the table holds no rows.
func replaceSchema(ctx context.Context, id TableID, t *table.Table, want *iceberg.Schema) (*table.Table, error) {
	tx := t.NewTransaction()
	u := tx.UpdateSchema(true, true, table.WithNameMapping(t.Schema().NameMapping()))
	have := t.Schema()
	for _, h := range have.Fields() {
		if _, ok := want.FindFieldByName(h.Name); !ok {
			u.DeleteColumn([]string{h.Name})
		}
	}
	for _, w := range want.Fields() {
		h, ok := have.FindFieldByName(w.Name)
		switch {
		case !ok:
			u.AddColumn([]string{w.Name}, w.Type, "", false, nil)
		case !h.Type.Equals(w.Type):
			u.UpdateColumn([]string{w.Name}, table.ColumnUpdate{FieldType: iceberg.Optional[iceberg.Type]{Valid: true, Val: w.Type}})
		}
	}
	if err := u.Commit(); err != nil {
		return nil, fmt.Errorf("rebuild %s: new schema: %w", id, err)
	}
	if err := tx.RemoveProperties([]string{rebuildKey}); err != nil {
		return nil, err
	}
	return commit(ctx, id, "rebuild", tx)
}

// rebuilding reports whether Rebuild marked the table.
func rebuilding(t *table.Table) bool {
	return t.Properties()[rebuildKey] == "true"
}

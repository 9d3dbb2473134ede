package lake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/medallionlake/medallion/meta"
)

// Leased is a handle on the same lake whose commits are fenced by a
// worker's lease: each one swaps the catalog pointer in the meta store
// transaction that checks the lease (meta.Store.InLease), so a worker whose
// lease expired or was rescued never commits, however late it wakes up.
// now is the worker's clock (nil: time.Now).
func (l *Lake) Leased(store meta.Store, lease meta.Lease, now func() time.Time) *Lake {
	f := *l
	if now == nil {
		now = time.Now
	}
	f.fence = &fence{store: store, lease: lease, now: now}
	return &f
}

type fence struct {
	store meta.Store
	lease meta.Lease
	now   func() time.Time
}

// load loads a table whose commits go through the lake's fence, if any.
func (l *Lake) load(ctx context.Context, id TableID) (*table.Table, error) {
	t, err := l.cat.LoadTable(ctx, id.ident())
	if err != nil || l.fence == nil {
		return t, err
	}
	return table.New(t.Identifier(), t.Metadata(), t.MetadataLocation(), t.FS, &fencedCatalog{l: l, id: id, f: l.fence}), nil
}

// snapshotProps are the summary properties of a write's snapshot: its rows
// and, for a worker's write, which lease made it.
func (l *Lake) snapshotProps(rows int64) map[string]string {
	props := map[string]string{"medallion.rows": strconv.FormatInt(rows, 10)}
	if l.fence != nil {
		props["medallion.worker"] = l.fence.lease.Worker
		props["medallion.partition"] = l.fence.lease.Key.String()
		props["medallion.attempt"] = strconv.Itoa(l.fence.lease.Attempt)
	}
	return props
}

// fencedCatalog commits as the SQL catalog does (apply the updates to the
// current metadata, write the new metadata file, compare-and-set the
// table's pointer in iceberg_tables), with the compare-and-set inside the
// lease fence. The SQL catalog's own commit runs in a transaction of its
// own, which a fence cannot join.
type fencedCatalog struct {
	l  *Lake
	id TableID
	f  *fence
}

func (c *fencedCatalog) LoadTable(ctx context.Context, ident table.Identifier) (*table.Table, error) {
	return c.l.load(ctx, c.id)
}

func (c *fencedCatalog) CommitTable(ctx context.Context, _ table.Identifier, reqs []table.Requirement, updates []table.Update) (table.Metadata, string, error) {
	current, err := c.l.cat.LoadTable(ctx, c.id.ident())
	if err != nil {
		return nil, "", err
	}
	for _, r := range reqs {
		if err := r.Validate(current.Metadata()); err != nil {
			return nil, "", err
		}
	}
	updated, err := table.UpdateTableMetadata(current.Metadata(), updates, current.MetadataLocation())
	if err != nil {
		return nil, "", err
	}
	version := metadataVersion(current.MetadataLocation())
	if version == math.MaxInt {
		return nil, "", fmt.Errorf("metadata location %s: not <version>-<uuid>.metadata.json", current.MetadataLocation())
	}
	provider, err := table.LoadLocationProvider(updated.Location(), updated.Properties())
	if err != nil {
		return nil, "", err
	}
	loc, err := provider.NewTableMetadataFileLocation(version + 1)
	if err != nil {
		return nil, "", err
	}
	if err := writeMetadata(ctx, current, updated, loc); err != nil {
		return nil, "", fmt.Errorf("write metadata of %s: %w", c.id, err)
	}
	err = c.f.store.InLease(ctx, c.f.lease, c.f.now(), func(tx meta.Tx) error {
		n, err := tx.Exec(ctx, `UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ?
			WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? AND metadata_location = ?`,
			loc, current.MetadataLocation(), CatalogName, c.id.Namespace, c.id.Name, current.MetadataLocation())
		if err != nil {
			return fmt.Errorf("update the catalog: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("%w: table %s moved underneath us", table.ErrCommitFailed, c.id)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return updated, loc, nil
}

// writeMetadata writes the new metadata file; Medallion's tables keep
// iceberg's default, uncompressed metadata.
func writeMetadata(ctx context.Context, t *table.Table, m table.Metadata, loc string) error {
	if codec := m.Properties().Get(table.MetadataCompressionKey, table.MetadataCompressionDefault); codec != table.MetadataCompressionCodecNone {
		return fmt.Errorf("metadata compression %q: a worker writes only uncompressed metadata", codec)
	}
	fsys, err := t.FS(ctx)
	if err != nil {
		return err
	}
	wfs, ok := fsys.(icebergio.WriteFileIO)
	if !ok {
		return errors.New("the table's file IO cannot write")
	}
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return wfs.WriteFile(loc, body)
}

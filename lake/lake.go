// Package lake owns Medallion's Iceberg tables (silver, gold, quarantine):
// the SQL catalog, atomic partition replacement, and file planning for
// DuckDB.
//
// The catalog lives in the meta store's database (SQLite or PostgreSQL) in
// the JDBC/PyIceberg SqlCatalog schema, so other engines can open it. Tables
// live under <storage>/warehouse/<namespace>/<table>. Writes are
// copy-on-write: DuckDB writes a partition's Parquet file, and one Iceberg
// snapshot swaps the partition's old files for it. No delete files are ever
// written, so reading a table's planned files is exact.
package lake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/storage"
)

// CatalogName is the catalog name recorded in the catalog tables; another
// engine opening the catalog must use the same name.
const CatalogName = "medallion"

// WarehousePrefix is the storage key prefix of the Iceberg warehouse.
const WarehousePrefix = "warehouse"

// Namespaces Medallion creates.
var Namespaces = []string{string(medtype.LayerSilver), string(medtype.LayerGold), string(medtype.LayerQuarantine)}

// ErrConflict means another writer committed to the table first. Callers
// recompute from the refreshed table and try again (see Retry).
var ErrConflict = errors.New("iceberg commit conflict")

// TableID names a table: namespace and name, e.g. silver.events.
type TableID struct {
	Namespace string
	Name      string
}

func (t TableID) String() string { return t.Namespace + "." + t.Name }

func (t TableID) ident() table.Identifier { return catalog.ToIdentifier(t.Namespace, t.Name) }

// ParseTableID parses namespace.table.
func ParseTableID(s string) (TableID, error) {
	ns, name, ok := strings.Cut(s, ".")
	if !ok || ns == "" || name == "" || strings.Contains(name, ".") {
		return TableID{}, fmt.Errorf("invalid table name %q: want namespace.table, e.g. gold.orders_daily", s)
	}
	return TableID{ns, name}, nil
}

// Lake is the Iceberg catalog plus the storage its tables live on.
type Lake struct {
	cat    *sqlcat.Catalog
	bucket storage.Bucket
	props  iceberg.Properties
	// force makes writes rewrite partitions that already hold their rows.
	force bool
	// fence, when set, fences every commit by a worker's lease (Leased).
	fence *fence
}

// Forcing is a handle on the same lake whose writes rewrite every
// partition they touch, even one whose live file already holds exactly the
// rows (backfill --force: a repair of damage Verify cannot see, such as a
// file changed in place with its size and row count kept).
func (l *Lake) Forcing() *Lake {
	f := *l
	f.force = true
	return &f
}

// Open opens the catalog in the meta store's database and creates the
// namespaces. s3 gives the credentials Iceberg's file IO uses when the
// bucket is on S3.
func Open(ctx context.Context, store meta.Store, bucket storage.Bucket, s3 config.S3) (*Lake, error) {
	dialect := sqlcat.SQLite
	if store.Kind() == "postgres" {
		dialect = sqlcat.Postgres
	}
	props := iceberg.Properties{"warehouse": strings.TrimSuffix(bucket.URI(WarehousePrefix), "/")}
	for k, v := range ioProperties(s3) {
		props[k] = v
	}
	cat, err := sqlcat.NewCatalog(CatalogName, store.DB(), dialect, props)
	if err != nil {
		return nil, fmt.Errorf("open iceberg catalog: %w", err)
	}
	l := &Lake{cat: cat, bucket: bucket, props: props}
	for _, ns := range Namespaces {
		err := cat.CreateNamespace(ctx, catalog.ToIdentifier(ns), nil)
		if err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
			return nil, fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	return l, nil
}

// Bucket is the storage the warehouse lives on.
func (l *Lake) Bucket() storage.Bucket { return l.bucket }

// Catalog exposes the Iceberg catalog (for listing and time travel).
func (l *Lake) Catalog() *sqlcat.Catalog { return l.cat }

// Load returns the table, or an error wrapping catalog.ErrNoSuchTable.
func (l *Lake) Load(ctx context.Context, id TableID) (*table.Table, error) {
	t, err := l.cat.LoadTable(ctx, id.ident())
	if err != nil {
		return nil, fmt.Errorf("load table %s: %w", id, err)
	}
	return t, nil
}

// loadIfExists is Load, with no table and no error for a missing one.
func (l *Lake) loadIfExists(ctx context.Context, id TableID) (*table.Table, error) {
	t, err := l.Load(ctx, id)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		return nil, nil
	}
	return t, err
}

// Exists reports whether the table exists.
func (l *Lake) Exists(ctx context.Context, id TableID) (bool, error) {
	return l.cat.CheckTableExists(ctx, id.ident())
}

// Tables lists the tables of a namespace, sorted.
func (l *Lake) Tables(ctx context.Context, namespace string) ([]TableID, error) {
	var out []TableID
	for ident, err := range l.cat.ListTables(ctx, catalog.ToIdentifier(namespace)) {
		if err != nil {
			return nil, fmt.Errorf("list tables in %s: %w", namespace, err)
		}
		out = append(out, TableID{namespace, catalog.TableNameFromIdent(ident)})
	}
	slices.SortFunc(out, func(a, b TableID) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// AllTables lists the tables of every namespace Medallion writes.
func (l *Lake) AllTables(ctx context.Context) ([]TableID, error) {
	var out []TableID
	for _, ns := range Namespaces {
		in, err := l.Tables(ctx, ns)
		if err != nil {
			return nil, err
		}
		out = append(out, in...)
	}
	return out, nil
}

// DataFile is one live data file of a table.
type DataFile struct {
	URI  string
	Rows int64
	Size int64
}

// Snapshot selects what Files reads: the current snapshot (zero value), a
// snapshot id, or the snapshot current at a time.
type Snapshot struct {
	ID   int64
	AsOf time.Time
}

// Files plans the live data files of a table, or of one partition when
// partition is set (the table must be partitioned by a date column). A
// missing table has no files.
func (l *Lake) Files(ctx context.Context, id TableID, partition *Partition, at Snapshot) ([]DataFile, error) {
	t, err := l.loadIfExists(ctx, id)
	if t == nil {
		return nil, err
	}
	return planFiles(ctx, t, partition, at)
}

// Fetch makes data files readable by DuckDB as local files (downloading
// them into dir when the warehouse is remote), in the order given.
func (l *Lake) Fetch(ctx context.Context, files []DataFile, dir string) ([]string, error) {
	keys := make([]string, len(files))
	for i, f := range files {
		k, err := storage.KeyOf(l.bucket, f.URI)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	return storage.Fetch(ctx, l.bucket, keys, dir)
}

// Partition selects one date partition of a table.
type Partition struct {
	Column string
	Date   medtype.Date
}

func planFiles(ctx context.Context, t *table.Table, partition *Partition, at Snapshot) ([]DataFile, error) {
	var within *DateRange
	if partition != nil {
		within = &DateRange{Column: partition.Column, From: partition.Date, To: partition.Date}
	}
	return planWithin(ctx, t, within, at)
}

// DateRange bounds a date column, both ends included; a zero end is open.
type DateRange struct {
	Column   string
	From, To medtype.Date
}

// filter is the Iceberg row filter of the range: the scan skips the
// files whose partition (or column statistics) lie outside it.
func (r DateRange) filter() iceberg.BooleanExpression {
	ref := iceberg.Reference(r.Column)
	days := func(d medtype.Date) iceberg.Date { return iceberg.Date(d.Time().Unix() / 86400) }
	var expr iceberg.BooleanExpression = iceberg.AlwaysTrue{}
	if !r.From.IsZero() {
		expr = iceberg.NewAnd(expr, iceberg.GreaterThanEqual(ref, days(r.From)))
	}
	if !r.To.IsZero() {
		expr = iceberg.NewAnd(expr, iceberg.LessThanEqual(ref, days(r.To)))
	}
	return expr
}

// planWithin plans the live data files as of at, only those that may hold
// rows inside within when it is set.
func planWithin(ctx context.Context, t *table.Table, within *DateRange, at Snapshot) ([]DataFile, error) {
	var opts []table.ScanOption
	if within != nil {
		opts = append(opts, table.WithRowFilter(within.filter()))
	}
	switch {
	case at.ID != 0:
		if t.SnapshotByID(at.ID) == nil {
			return nil, fmt.Errorf("table %s has no snapshot %d", strings.Join(t.Identifier(), "."), at.ID)
		}
		opts = append(opts, table.WithSnapshotID(at.ID))
	case !at.AsOf.IsZero():
		if oldest := oldestSnapshot(t); oldest != nil && at.AsOf.UnixMilli() < oldest.TimestampMs {
			return nil, fmt.Errorf("table %s has no snapshot as of %s: its oldest is from %s (the table did not exist yet, or maintain expired older snapshots: see lake.snapshot_retention)",
				strings.Join(t.Identifier(), "."), at.AsOf.UTC().Format(time.RFC3339), time.UnixMilli(oldest.TimestampMs).UTC().Format(time.RFC3339))
		}
		opts = append(opts, table.WithSnapshotAsOf(at.AsOf.UnixMilli()))
	}
	if t.CurrentSnapshot() == nil && at.ID == 0 && at.AsOf.IsZero() {
		return nil, nil
	}
	tasks, err := t.Scan(opts...).PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan files of %s: %w", strings.Join(t.Identifier(), "."), err)
	}
	out := make([]DataFile, 0, len(tasks))
	for _, task := range tasks {
		if len(task.DeleteFiles)+len(task.EqualityDeleteFiles)+len(task.DeletionVectorFiles) > 0 {
			return nil, fmt.Errorf("table %s has delete files, which Medallion never writes; read it with a full Iceberg engine", strings.Join(t.Identifier(), "."))
		}
		out = append(out, DataFile{URI: task.File.FilePath(), Rows: task.File.Count(), Size: task.File.FileSizeBytes()})
	}
	slices.SortFunc(out, func(a, b DataFile) int { return strings.Compare(a.URI, b.URI) })
	return out, nil
}

func oldestSnapshot(t *table.Table) *table.Snapshot {
	var oldest *table.Snapshot
	for _, s := range t.Metadata().Snapshots() {
		if oldest == nil || s.TimestampMs < oldest.TimestampMs {
			oldest = &s
		}
	}
	return oldest
}

// Commit is the outcome of a Write.
type Commit struct {
	// SnapshotID is the table's current snapshot after the call (0 for a
	// table without one).
	SnapshotID int64
	// Sequence is the sequence number of the snapshot whose content the
	// written scope now is (the new one, or the current one when nothing
	// changed): writers' results ordered by it are in commit order.
	Sequence int64
	// TableUUID identifies the table: a table dropped and created again
	// starts its sequence numbers again.
	TableUUID string
	// Changed is false when the partition already held exactly the new file
	// and nothing was committed.
	Changed bool
	// Replaced is how many files left the table.
	Replaced int
}

func sequence(t *table.Table) int64 {
	if s := t.CurrentSnapshot(); s != nil {
		return s.SequenceNumber
	}
	return 0
}

func snapshotID(t *table.Table) int64 {
	if s := t.CurrentSnapshot(); s != nil {
		return s.SnapshotID
	}
	return 0
}

// isConflict recognises a lost optimistic-concurrency race. The SQL catalog
// reports it as a failed requirement, which iceberg-go does not always wrap
// in table.ErrCommitFailed; a commit whose base snapshot is no longer on
// the branch (another writer replaced it, or it expired) is
// table.ErrCommitDiverged, which does not wrap ErrCommitFailed but is
// fixed the same way: recompute from the current table.
func isConflict(err error) bool {
	return errors.Is(err, table.ErrCommitFailed) || errors.Is(err, table.ErrCommitDiverged) ||
		strings.Contains(strings.ToLower(err.Error()), "requirement failed") || baseExpired(err) ||
		strings.Contains(err.Error(), "(SQLSTATE 40001)") // PostgreSQL's serialization failure: two catalog writers at once
}

// asConflict marks err as ErrConflict when it is one, so that Retry
// recomputes the write from the current snapshot.
func asConflict(err error) error {
	if err != nil && !errors.Is(err, ErrConflict) && isConflict(err) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// baseExpired says a commit could not read a metadata file (a manifest or
// manifest list) of the snapshot it started from: a concurrent maintain
// expired that snapshot (a manifest merge or compaction had made a newer
// one current) and deleted its files. The writer lost a race, and a retry
// starts from the current snapshot.
func baseExpired(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && errors.Is(pe.Err, fs.ErrNotExist) && strings.Contains(pe.Path, "/metadata/")
}

// retryFor bounds how long Retry keeps recomputing after lost races. Every
// lost race is another writer's commit, so the writers as a whole progress;
// a bound in time rather than in attempts lets one writer among several on
// a current-state table (whose whole gold job is the race window) win in
// the end instead of failing its partition.
const retryFor = 2 * time.Minute

// Retry runs fn until it succeeds, fails with something other than
// ErrConflict, or has lost races for retryFor. iceberg-go's own retry does
// not fire with the SQL catalog, and the caller must recompute anyway
// because a current-state table's new content depends on the content it
// replaces. The waits between attempts are random up to a bound that
// doubles from 25 ms to 2 s ("full jitter"), so that writers that collided
// do not collide again.
func Retry(ctx context.Context, fn func() error) error {
	start := time.Now()
	var err error
	for attempt := 1; ; attempt++ {
		if err = fn(); !errors.Is(err, ErrConflict) {
			return err
		}
		if time.Since(start) > retryFor {
			return fmt.Errorf("gave up after %d conflicting commits in %s: %w", attempt, time.Since(start).Round(time.Second), err)
		}
		bound := min(2*time.Second, 25*time.Millisecond<<min(attempt, 7))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(rand.Int64N(int64(bound)) + 1)):
		}
	}
}

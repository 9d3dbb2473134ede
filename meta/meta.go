// Package meta is the partition state machine: one row per (domain,
// partition_date) with its state, counts, file hash, lease and snapshots; a
// history of every transition; a run log; and the overlap lock.
//
// There are two stores behind one interface: SQLite (the embedded default)
// and PostgreSQL (production, several hosts). Both pass one conformance
// suite (meta/metatest). Every transition is a compare-and-set against the
// allowed-from list of the transition table in states.go.
package meta

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/medallionlake/medallion/medtype"
)

var (
	// ErrNotAllowed means the transition is not in the table for the
	// partition's current state. It is a logic error in the caller, or the
	// state changed in a way the caller must re-read; retrying blindly will
	// fail again.
	ErrNotAllowed = errors.New("transition not allowed")
	// ErrConflict means another worker or run changed the partition between
	// our read and our write (the compare-and-set matched no row). Re-read
	// the partition and decide again; usually the other party owns it now.
	ErrConflict = errors.New("partition changed concurrently")
	// ErrLeaseLost means the caller's lease on an IN_FLIGHT partition has
	// expired and been rescued, or another worker holds it. Stop working on
	// the partition and do not commit its results as DONE.
	ErrLeaseLost = errors.New("lease lost")
	// ErrArchived means the partition is archived: bronze.retention deleted
	// its bronze files, so it cannot be processed again.
	ErrArchived = errors.New("partition archived: its bronze files were deleted by bronze.retention")
	// ErrNotFound means no partition row exists (it is UNDISCOVERED).
	ErrNotFound = errors.New("partition not found")
	// ErrLocked means another process holds the named lock (e.g. another
	// `medallion run`). Exit and let the holder finish.
	ErrLocked = errors.New("lock held by another process")
)

// TransitionError says which transition failed and why; it wraps
// ErrNotAllowed, ErrConflict or ErrLeaseLost.
type TransitionError struct {
	Key      medtype.PartitionKey
	From, To State
	Err      error
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("partition %s: %s -> %s: %v", e.Key, e.From, e.To, e.Err)
}

func (e *TransitionError) Unwrap() error { return e.Err }

// Partition is one row of the state machine.
type Partition struct {
	Key           medtype.PartitionKey `json:"key"`
	Status        State                `json:"status"`
	RunID         string               `json:"run_id,omitempty"`
	RecordCount   int64                `json:"record_count"`
	SilverRecords int64                `json:"silver_records"`
	GoldRecords   int64                `json:"gold_records"`
	// SourceFiles are the bronze keys of the partition, sorted.
	SourceFiles []string `json:"source_files"`
	// FileHash hashes the sorted (key, size, version) list: for DONE the
	// list that was processed, otherwise the list last discovered.
	FileHash   string `json:"file_hash"`
	RetryCount int    `json:"retry_count"`
	// RetryExempt is set while FAILED by an interruption (Update.Interrupted).
	RetryExempt  bool   `json:"retry_exempt,omitempty"`
	Attempts     int    `json:"attempts"`
	ErrorMessage string `json:"error_message,omitempty"`
	SilverPath   string `json:"silver_path,omitempty"`
	GoldPath     string `json:"gold_path,omitempty"`
	// Snapshots maps table name (silver.events) to the Iceberg snapshot id
	// the last successful run wrote.
	Snapshots      map[string]int64 `json:"snapshots,omitempty"`
	LeasedBy       string           `json:"leased_by,omitempty"`
	LeaseExpiresAt time.Time        `json:"lease_expires_at,omitzero"`
	DurationMS     int64            `json:"duration_ms"`
	CreatedAt      time.Time        `json:"created_at"`
	UpdatedAt      time.Time        `json:"updated_at"`
	ProcessedAt    time.Time        `json:"processed_at,omitzero"`
	// ArchivedAt is when bronze.retention deleted the bronze files of this
	// DONE partition (zero if it did not). An archived partition stays DONE
	// for good: its tables keep their rows, and no transition is allowed.
	ArchivedAt time.Time `json:"archived_at,omitzero"`
}

// Update is what a transition writes besides the state. Nil or zero fields
// leave the column as it is.
type Update struct {
	RunID string
	// Worker identifies the caller. Moving to IN_FLIGHT records it as the
	// lease holder; leaving IN_FLIGHT with a Worker set succeeds only while
	// that worker still holds the lease at Attempt (ErrLeaseLost otherwise).
	Worker   string
	Attempt  int
	LeaseTTL time.Duration

	Error string // set on FAILED; DONE and PENDING clear it
	// Interrupted marks a FAILED that was not the partition's fault: the
	// run was stopped, or its worker's lease expired (a crash). Requeue
	// retries it without counting it against max_retries; the history
	// keeps it.
	Interrupted   bool
	RecordCount   *int64
	SilverRecords *int64
	GoldRecords   *int64
	SourceFiles   []string
	FileHash      *string
	SilverPath    *string
	GoldPath      *string
	Snapshots     map[string]int64
	DurationMS    *int64
	// Message goes into the history row.
	Message string
	// Now pins the clock (tests); zero means time.Now().
	Now time.Time
}

// Event is one row of a partition's history.
type Event struct {
	ID      int64                `json:"id"`
	Key     medtype.PartitionKey `json:"key"`
	From    State                `json:"from"`
	To      State                `json:"to"`
	RunID   string               `json:"run_id,omitempty"`
	Worker  string               `json:"worker,omitempty"`
	Message string               `json:"message,omitempty"`
	At      time.Time            `json:"at"`
}

// Discovery is what Discover did with one partition.
type Discovery struct {
	Key medtype.PartitionKey
	// From and To are the states before and after; equal when unchanged.
	From, To State
	// HashChanged is true when the stored hash differed (or there was none).
	HashChanged bool
	// Added and Removed are the file keys that differ from the stored list.
	Added, Removed []string
	// Archived is set for an archived partition, which discovery leaves
	// as it is whatever its files: files retention deleted are Removed,
	// and Added ones arrived too late to be processed.
	Archived bool
}

// Filter selects partitions. Zero fields match everything.
type Filter struct {
	Domains []string
	States  []State
	From    medtype.Date // inclusive
	To      medtype.Date // inclusive
	Limit   int
}

// ClaimParams asks for queued partitions to lease.
type ClaimParams struct {
	Worker   string
	RunID    string
	LeaseTTL time.Duration
	Limit    int
	Filter   Filter // States is ignored: claims take Queued()
	Now      time.Time
}

// Lease is a worker's hold on an IN_FLIGHT partition: the attempt it
// claimed.
type Lease struct {
	Key     medtype.PartitionKey
	Worker  string
	Attempt int
}

// Tx is what InLease lends its function: statements with ? placeholders,
// run in the fenced transaction.
type Tx interface {
	Exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
}

// RequeueResult lists what Requeue moved.
type RequeueResult struct {
	Retrying, Dead, Reprocessing []medtype.PartitionKey
}

// StateCount is one cell of the status summary.
type StateCount struct {
	Domain string `json:"domain"`
	State  State  `json:"state"`
	Count  int    `json:"count"`
}

// Run is one entry of the run log.
type Run struct {
	ID         string    `json:"run_id"`
	Command    string    `json:"command"`
	Host       string    `json:"host"`
	PID        int       `json:"pid"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Outcome is "running", "ok", "failed" or "aborted".
	Outcome    string `json:"outcome"`
	Partitions int    `json:"partitions"`
	Done       int    `json:"done"`
	Failed     int    `json:"failed"`
	Error      string `json:"error,omitempty"`
}

// Maintained is the state a full maintenance pass left a lake table in.
type Maintained struct {
	Table            string // namespace.table
	MetadataLocation string
	At               time.Time
}

// ExtractState is where an extract of a PostgreSQL source has got to.
type ExtractState struct {
	Source  string `json:"source"`
	Extract string `json:"extract"`
	Mode    string `json:"mode"`
	// Position is the extractor's own: a watermark and tie-breaker key, a
	// confirmed LSN, the time of the last snapshot. "" before the first.
	Position      string    `json:"position"`
	Rows          int64     `json:"rows"`
	LastRunAt     time.Time `json:"last_run_at,omitzero"`
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	UpdatedAt     time.Time `json:"updated_at"`
	// RetainedWAL (cdc) is how many bytes of WAL the server kept for the
	// slot when the extract last looked; -1 if it never looked.
	RetainedWAL int64 `json:"retained_wal"`
}

// Listing is what a run needs to list a domain's bronze files without
// reading all of them: its oldest and newest tracked partition dates, and
// when a run last listed all of them (zero for never).
type Listing struct {
	Oldest, Newest medtype.Date
	ListedAll      time.Time
}

// Store is the partition state store. Methods take ctx first and stop when it
// is cancelled.
type Store interface {
	// Get returns one partition, or ErrNotFound (the partition is
	// UNDISCOVERED).
	Get(ctx context.Context, key medtype.PartitionKey) (Partition, error)
	// List returns partitions matching f, oldest date first, then domain.
	List(ctx context.Context, f Filter) ([]Partition, error)
	// FileHashes maps each partition matching f to its bronze file hash:
	// what discovery compares, without reading whole partitions.
	FileHashes(ctx context.Context, f Filter) (map[medtype.PartitionKey]string, error)
	// Summary counts partitions by domain and state; archived partitions
	// count as ARCHIVED rather than DONE.
	Summary(ctx context.Context) ([]StateCount, error)
	// History returns a partition's transitions, newest first.
	History(ctx context.Context, key medtype.PartitionKey, limit int) ([]Event, error)

	// Transition moves a partition to state to if its current state is in
	// the allowed-from list, writing u in the same statement. Moving an
	// UNDISCOVERED (absent) partition to PENDING creates it.
	Transition(ctx context.Context, key medtype.PartitionKey, to State, u Update) (Partition, error)
	// Discover records a partition's current bronze file list and hash: an
	// unknown partition becomes PENDING, a DONE partition whose hash changed
	// becomes LATE, an IN_FLIGHT partition is left to its worker, and any
	// other state just stores the new list.
	Discover(ctx context.Context, key medtype.PartitionKey, files []string, hash, runID string, now time.Time) (Discovery, error)
	// Archive marks a DONE partition archived (its bronze files are about
	// to be deleted by retention) and records it in the history; any other
	// state is ErrConflict.
	Archive(ctx context.Context, key medtype.PartitionKey, runID, message string, now time.Time) error
	// Requeue prepares a domain's queue: FAILED partitions with fewer than
	// maxRetries retries become RETRYING (retry_count+1), the others DEAD;
	// LATE partitions become REPROCESSING.
	Requeue(ctx context.Context, domain string, maxRetries int, runID string, now time.Time) (RequeueResult, error)
	// Claim leases up to p.Limit queued partitions to p.Worker, oldest
	// first, moving them to IN_FLIGHT. Concurrent claimers never receive the
	// same partition.
	Claim(ctx context.Context, p ClaimParams) ([]Partition, error)
	// InLease runs fn in one transaction that first checks that l is held
	// and unexpired at now, and keeps the partition from being rescued or
	// moved until the transaction ends; ErrLeaseLost if it is not held.
	InLease(ctx context.Context, l Lease, now time.Time, fn func(Tx) error) error
	// Heartbeat extends the worker's lease; ErrLeaseLost if it no longer
	// holds it.
	Heartbeat(ctx context.Context, key medtype.PartitionKey, worker string, attempt int, ttl time.Duration, now time.Time) error
	// RescueExpired moves IN_FLIGHT partitions whose lease expired before
	// now to FAILED; they are retried by the next Requeue.
	RescueExpired(ctx context.Context, runID string, now time.Time) ([]Partition, error)

	// StartRun and FinishRun write the run log; Runs reads it, newest first.
	StartRun(ctx context.Context, r Run) error
	FinishRun(ctx context.Context, r Run) error
	Runs(ctx context.Context, limit int) ([]Run, error)

	// Maintained returns, per lake table, the state its last full
	// maintenance pass left; RecordMaintained records one.
	Maintained(ctx context.Context) (map[string]Maintained, error)
	RecordMaintained(ctx context.Context, m Maintained) error

	// Listing reads a domain's Listing; RecordFullListing records that a
	// run listed all its bronze files at at.
	Listing(ctx context.Context, domain string) (Listing, error)
	RecordFullListing(ctx context.Context, domain string, at time.Time) error

	// Extract reads an extract's state, ErrNotFound before its first run;
	// Extracts reads them all, by source and extract.
	Extract(ctx context.Context, source, extract string) (ExtractState, error)
	Extracts(ctx context.Context) ([]ExtractState, error)
	// AdvanceExtract moves an extract from position from to s.Position,
	// adding s.Rows, once the rows up to it are durable: a compare-and-set,
	// ErrConflict if the position is no longer from (another extractor
	// moved it). FailExtract records a failed run and leaves the position.
	AdvanceExtract(ctx context.Context, s ExtractState, from string, at time.Time) error
	FailExtract(ctx context.Context, source, extract, mode, message string, at time.Time) error
	// RecordRetainedWAL notes the WAL a cdc extract's slot keeps.
	RecordRetainedWAL(ctx context.Context, source, extract string, bytes int64) error
	// ForgetExtract deletes an extract's state: its next run starts anew.
	ForgetExtract(ctx context.Context, source, extract string) error

	// AlertOnce records that an alert for the partition and cause is sent
	// at at, and reports whether to send it: false when one was sent after
	// the partition was last DONE. ForgetAlert takes a record back (the
	// alert could not be delivered), so the next run sends it again.
	AlertOnce(ctx context.Context, key medtype.PartitionKey, cause string, at time.Time) (bool, error)
	ForgetAlert(ctx context.Context, key medtype.PartitionKey, cause string, at time.Time) error

	// NotifyWork tells waiting workers that partitions were queued;
	// WaitForWork returns when that happens, after d, or when ctx ends.
	// PostgreSQL uses LISTEN/NOTIFY; SQLite, whose queue is one process's,
	// only sleeps.
	NotifyWork(ctx context.Context) error
	WaitForWork(ctx context.Context, d time.Duration) error

	// TryLock takes the named process-wide lock without waiting: ErrLocked
	// if another process (or another TryLock in this one) holds it. The
	// returned function releases it.
	TryLock(ctx context.Context, name string) (release func() error, err error)

	// Kind is "sqlite" or "postgres".
	Kind() string
	// DB is the store's connection pool. The Iceberg catalog lives in the
	// same database and shares it.
	DB() *sql.DB
	Close() error
}

package meta

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/medallionlake/medallion/medtype"
)

// dialect is what differs between the SQLite and PostgreSQL stores. The
// state machine itself is written once, in sqlStore.
type dialect struct {
	name string
	// rebind turns the ?-placeholders the queries are written with into
	// the driver's own.
	rebind func(q string) string
	// timeArg converts a time for a timestamp column.
	timeArg func(t time.Time) any
	// lockRows is appended to the SELECTs that precede a compare-and-set
	// ("FOR UPDATE" on PostgreSQL; SQLite transactions are IMMEDIATE and
	// so already exclusive).
	lockRows string
	// skipLocked is lockRows that passes over rows another transaction
	// holds (a worker's lease fence, see InLease) instead of waiting.
	skipLocked string
	stmts      statements
	// listArg passes a list of text values to a named statement: a text
	// array on PostgreSQL, JSON on SQLite.
	listArg      func(values []string) any
	migrations   fs.FS
	beginMigrate func(ctx context.Context, tx *sql.Tx) error
	tryLock      func(ctx context.Context, name string) (func() error, error)
	// byState is the domain column of a filter that also selects states:
	// "+domain" on SQLite, whose planner (without value statistics) reads
	// every row of the domain through the primary key instead of the few
	// of those states through the queue index, which made an idle run
	// linear in the lake's age.
	byState string
}

type sqlStore struct {
	db *sql.DB
	d  dialect
	// work is the LISTEN/NOTIFY channel of workers (PostgreSQL only).
	work *listener
	// afterCommit, set by tests only, runs after each transaction commits.
	afterCommit func()
}

const partitionCols = `domain, partition_date, status, run_id, record_count, silver_records, gold_records,
	source_files, file_hash, retry_count, attempts, error_message, silver_path, gold_path, snapshots,
	leased_by, lease_expires_at, duration_ms, created_at, updated_at, processed_at, retry_exempt, archived_at`

func (s *sqlStore) Kind() string { return s.d.name }
func (s *sqlStore) Close() error {
	if s.work != nil {
		s.work.close()
	}
	return s.db.Close()
}
func (s *sqlStore) DB() *sql.DB { return s.db }

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

func (s *sqlStore) query(ctx context.Context, q querier, sqlText string, args ...any) (*sql.Rows, error) {
	return q.QueryContext(ctx, s.d.rebind(sqlText), args...)
}

func (s *sqlStore) exec(ctx context.Context, q querier, sqlText string, args ...any) (sql.Result, error) {
	return q.ExecContext(ctx, s.d.rebind(sqlText), args...)
}

// inTx runs fn in a transaction and commits it, rolling back on error.
func (s *sqlStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("meta: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("meta: commit: %w", err)
	}
	if s.afterCommit != nil {
		s.afterCommit()
	}
	return nil
}

// migrate applies the embedded NNN_name.up.sql files not yet recorded in
// medallion_schema_migrations, each in its own transaction.
func (s *sqlStore) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS medallion_schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("meta: create migrations table: %w", err)
	}
	files, err := fs.Glob(s.d.migrations, "*.up.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		version, err := strconv.Atoi(strings.SplitN(f, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("meta: migration %s: name must start with a number", f)
		}
		body, err := fs.ReadFile(s.d.migrations, f)
		if err != nil {
			return err
		}
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			if s.d.beginMigrate != nil {
				if err := s.d.beginMigrate(ctx, tx); err != nil {
					return err
				}
			}
			var n int
			if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT count(*) FROM medallion_schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("meta: migration %s: %w", f, err)
			}
			_, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO medallion_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				version, f, time.Now().UTC().Format(time.RFC3339))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- reading ---------------------------------------------------------------

func scanPartition(sc interface{ Scan(...any) error }) (Partition, error) {
	var (
		p                                          Partition
		runID, errMsg, silverPath, goldPath, lease sql.NullString
		files, snaps                               []byte
		leaseAt, created, updated, processed       timeCol
		archived                                   timeCol
	)
	err := sc.Scan(&p.Key.Domain, &p.Key.Date, &p.Status, &runID, &p.RecordCount, &p.SilverRecords, &p.GoldRecords,
		&files, &p.FileHash, &p.RetryCount, &p.Attempts, &errMsg, &silverPath, &goldPath, &snaps,
		&lease, &leaseAt, &p.DurationMS, &created, &updated, &processed, &p.RetryExempt, &archived)
	if err != nil {
		return Partition{}, err
	}
	p.RunID, p.ErrorMessage, p.SilverPath, p.GoldPath, p.LeasedBy = runID.String, errMsg.String, silverPath.String, goldPath.String, lease.String
	p.LeaseExpiresAt, p.CreatedAt, p.UpdatedAt, p.ProcessedAt, p.ArchivedAt = leaseAt.t, created.t, updated.t, processed.t, archived.t
	if err := json.Unmarshal(files, &p.SourceFiles); err != nil {
		return Partition{}, fmt.Errorf("meta: source_files of %s: %w", p.Key, err)
	}
	if err := json.Unmarshal(snaps, &p.Snapshots); err != nil {
		return Partition{}, fmt.Errorf("meta: snapshots of %s: %w", p.Key, err)
	}
	if p.SourceFiles == nil {
		p.SourceFiles = []string{}
	}
	return p, nil
}

// timeCol scans a timestamp stored as TIMESTAMPTZ (PostgreSQL) or as UTC
// text (SQLite); NULL is the zero time.
type timeCol struct{ t time.Time }

func (c *timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		c.t = time.Time{}
	case time.Time:
		c.t = v.UTC()
	case string:
		return c.parse(v)
	case []byte:
		return c.parse(string(v))
	default:
		return fmt.Errorf("meta: cannot scan %T as a time", src)
	}
	return nil
}

func (c *timeCol) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("meta: bad timestamp %q: %w", s, err)
	}
	c.t = t.UTC()
	return nil
}

// getTx reads a partition; lock is "", s.d.lockRows or s.d.skipLocked.
func (s *sqlStore) getTx(ctx context.Context, q querier, key medtype.PartitionKey, lock string) (Partition, error) {
	rows, err := q.QueryContext(ctx, s.d.stmts.get("GetPartition")+lock, key.Domain, key.Date)
	if err != nil {
		return Partition{}, fmt.Errorf("meta: get %s: %w", key, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Partition{}, fmt.Errorf("meta: get %s: %w", key, err)
		}
		return Partition{}, fmt.Errorf("meta: %s: %w", key, ErrNotFound)
	}
	p, err := scanPartition(rows)
	if err != nil {
		return Partition{}, err
	}
	return p, rows.Close()
}

func (s *sqlStore) Get(ctx context.Context, key medtype.PartitionKey) (Partition, error) {
	return s.getTx(ctx, s.db, key, "")
}

// where builds the WHERE clause of a Filter.
func (d dialect) where(f Filter) (string, []any) {
	var conds []string
	var args []any
	in := func(col string, n int) string {
		return col + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
	}
	if len(f.Domains) > 0 {
		col := "domain"
		if len(f.States) > 0 && d.byState != "" {
			col = d.byState
		}
		conds = append(conds, in(col, len(f.Domains)))
		for _, d := range f.Domains {
			args = append(args, d)
		}
	}
	if len(f.States) > 0 {
		conds = append(conds, in("status", len(f.States)))
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	if !f.From.IsZero() {
		conds = append(conds, "partition_date >= ?")
		args = append(args, f.From)
	}
	if !f.To.IsZero() {
		conds = append(conds, "partition_date <= ?")
		args = append(args, f.To)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func (s *sqlStore) listTx(ctx context.Context, q querier, f Filter, suffix string) ([]Partition, error) {
	w, args := s.d.where(f)
	text := `SELECT ` + partitionCols + ` FROM medallion_partitions` + w + ` ORDER BY partition_date, domain`
	if f.Limit > 0 {
		text += ` LIMIT ` + strconv.Itoa(f.Limit)
	}
	rows, err := s.query(ctx, q, text+suffix, args...)
	if err != nil {
		return nil, fmt.Errorf("meta: list partitions: %w", err)
	}
	defer rows.Close()
	var out []Partition
	for rows.Next() {
		p, err := scanPartition(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (s *sqlStore) List(ctx context.Context, f Filter) ([]Partition, error) {
	return s.listTx(ctx, s.db, f, "")
}

func (s *sqlStore) FileHashes(ctx context.Context, f Filter) (map[medtype.PartitionKey]string, error) {
	cond, args := s.d.where(f)
	rows, err := s.query(ctx, s.db, `SELECT domain, partition_date, file_hash FROM medallion_partitions`+cond, args...)
	if err != nil {
		return nil, fmt.Errorf("meta: file hashes: %w", err)
	}
	defer rows.Close()
	out := map[medtype.PartitionKey]string{}
	for rows.Next() {
		var (
			k    medtype.PartitionKey
			hash sql.NullString
		)
		if err := rows.Scan(&k.Domain, &k.Date, &hash); err != nil {
			return nil, err
		}
		out[k] = hash.String
	}
	return out, rows.Err()
}

func (s *sqlStore) Summary(ctx context.Context) ([]StateCount, error) {
	rows, err := s.db.QueryContext(ctx, s.d.stmts.get("Summary"))
	if err != nil {
		return nil, fmt.Errorf("meta: summary: %w", err)
	}
	defer rows.Close()
	var out []StateCount
	for rows.Next() {
		var c StateCount
		if err := rows.Scan(&c.Domain, &c.State, &c.Count); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *sqlStore) History(ctx context.Context, key medtype.PartitionKey, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, s.d.stmts.get("History"), key.Domain, key.Date, limit)
	if err != nil {
		return nil, fmt.Errorf("meta: history %s: %w", key, err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			e                    Event
			run, worker, message sql.NullString
			at                   timeCol
		)
		if err := rows.Scan(&e.ID, &e.Key.Domain, &e.Key.Date, &e.From, &e.To, &run, &worker, &message, &at); err != nil {
			return nil, err
		}
		e.RunID, e.Worker, e.Message, e.At = run.String, worker.String, message.String, at.t
		out = append(out, e)
	}
	return out, rows.Err()
}

// ---- transitions -----------------------------------------------------------

func clock(now time.Time) time.Time {
	if now.IsZero() {
		now = time.Now()
	}
	return now.UTC().Truncate(time.Microsecond)
}

// cas is the extra compare-and-set condition of a transition beyond the
// current state.
type cas struct {
	leaseHolder   string
	attempt       int
	expiredBefore time.Time
}

// transitionTx moves cur (nil when the partition has no row) to to inside
// tx with the named statement Transition, then records the event. It is
// the only writer of status.
func (s *sqlStore) transitionTx(ctx context.Context, tx *sql.Tx, key medtype.PartitionKey, cur *Partition, to State, u Update, c cas) error {
	from := medtype.StateUndiscovered
	if cur != nil {
		from = cur.Status
	}
	if !CanTransition(from, to) {
		return &TransitionError{Key: key, From: from, To: to, Err: ErrNotAllowed}
	}
	if cur != nil && !cur.ArchivedAt.IsZero() {
		return &TransitionError{Key: key, From: from, To: to, Err: ErrArchived}
	}
	now := clock(u.Now)
	stateCond := string(from)
	if cur == nil {
		if _, err := tx.ExecContext(ctx, s.d.stmts.get("InsertPartition"), key.Domain, key.Date, s.d.timeArg(now)); err != nil {
			if isUniqueViolation(err) {
				return &TransitionError{Key: key, From: from, To: to, Err: ErrConflict}
			}
			return fmt.Errorf("meta: insert %s: %w", key, err)
		}
		stateCond = string(medtype.StatePending) // the placeholder row just inserted
	}
	// The lease is checked only when leaving IN_FLIGHT: that is the one
	// move a worker whose lease was rescued must not make.
	var holder any
	attempt := 0
	if from == medtype.StateInFlight && c.leaseHolder != "" {
		if cur.LeasedBy != c.leaseHolder || (c.attempt != 0 && cur.Attempts != c.attempt) {
			return &TransitionError{Key: key, From: from, To: to, Err: fmt.Errorf("%w: held by %q (attempt %d)", ErrLeaseLost, cur.LeasedBy, cur.Attempts)}
		}
		holder, attempt = c.leaseHolder, c.attempt
	}
	var expiredBefore, leaseUntil any
	if !c.expiredBefore.IsZero() {
		expiredBefore = s.d.timeArg(c.expiredBefore)
	}
	if to == medtype.StateInFlight {
		ttl := u.LeaseTTL
		if ttl <= 0 {
			ttl = 10 * time.Minute
		}
		leaseUntil = s.d.timeArg(now.Add(ttl))
	}
	res, err := tx.ExecContext(ctx, s.d.stmts.get("Transition"),
		key.Domain, key.Date, stateCond, string(to), s.d.timeArg(now), nullStr(u.RunID),
		nullable(u.RecordCount), nullable(u.SilverRecords), nullable(u.GoldRecords), jsonOrNull(u.SourceFiles),
		nullable(u.FileHash), nullable(u.SilverPath), nullable(u.GoldPath), jsonOrNull(u.Snapshots), nullable(u.DurationMS),
		u.Worker, leaseUntil, u.Error, u.Interrupted, holder, attempt, expiredBefore)
	if err != nil {
		return fmt.Errorf("meta: %s %s -> %s: %w", key, from, to, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return &TransitionError{Key: key, From: from, To: to, Err: ErrConflict}
	}
	if cur == nil {
		from = medtype.StateUndiscovered
	}
	_, err = tx.ExecContext(ctx, s.d.stmts.get("InsertEvent"), key.Domain, key.Date, string(from), string(to),
		nullStr(u.RunID), nullStr(u.Worker), nullStr(eventMessage(to, u)), s.d.timeArg(now))
	if err != nil {
		return fmt.Errorf("meta: record event %s: %w", key, err)
	}
	return nil
}

// nullable is *p, or NULL for nil (the column keeps its value).
func nullable[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// jsonOrNull is v as JSON text, or NULL for a nil slice or map.
func jsonOrNull[T any](v T) any {
	js, _ := json.Marshal(v)
	if string(js) == "null" {
		return nil
	}
	return string(js)
}

func eventMessage(to State, u Update) string {
	if u.Message != "" {
		return u.Message
	}
	if to == medtype.StateFailed {
		return u.Error
	}
	return ""
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func isUniqueViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "SQLSTATE 23505")
}

func (s *sqlStore) Transition(ctx context.Context, key medtype.PartitionKey, to State, u Update) (Partition, error) {
	if !to.Valid() {
		return Partition{}, fmt.Errorf("meta: unknown state %q", to)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := s.getTx(ctx, tx, key, s.d.lockRows)
		var curp *Partition
		switch {
		case err == nil:
			curp = &cur
		case !errors.Is(err, ErrNotFound):
			return err
		}
		return s.transitionTx(ctx, tx, key, curp, to, u, cas{leaseHolder: u.Worker, attempt: u.Attempt})
	})
	if err != nil {
		return Partition{}, err
	}
	return s.committed(ctx, key)
}

// committed reads back a partition a committed transaction changed, even
// if ctx was cancelled meanwhile: the change holds, and a caller that got
// an error instead would not know it owns the result (a claim would stay
// IN_FLIGHT, owned by nobody, until its lease expired).
func (s *sqlStore) committed(ctx context.Context, key medtype.PartitionKey) (Partition, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return s.Get(ctx, key)
}

func (s *sqlStore) Discover(ctx context.Context, key medtype.PartitionKey, files []string, hash, runID string, now time.Time) (Discovery, error) {
	files = slices.Clone(files)
	sort.Strings(files)
	d := Discovery{Key: key}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := s.getTx(ctx, tx, key, s.d.lockRows)
		u := Update{RunID: runID, SourceFiles: files, FileHash: &hash, Now: now}
		switch {
		case errors.Is(err, ErrNotFound):
			d.From, d.To, d.HashChanged, d.Added = medtype.StateUndiscovered, medtype.StatePending, true, files
			u.Message = fmt.Sprintf("discovered %d bronze files", len(files))
			return s.transitionTx(ctx, tx, key, nil, medtype.StatePending, u, cas{})
		case err != nil:
			return err
		}
		d.From, d.To = cur.Status, cur.Status
		if cur.FileHash == hash {
			return nil
		}
		d.HashChanged = true
		d.Added, d.Removed = diff(cur.SourceFiles, files)
		if d.Archived = !cur.ArchivedAt.IsZero(); d.Archived {
			return nil // retention deleted its files; the list stays that of what was processed
		}
		switch cur.Status {
		case medtype.StateInFlight:
			return nil // its worker records the hash of what it processed
		case medtype.StateDone:
			d.To = medtype.StateLate
			u.Message = fmt.Sprintf("bronze files changed: %d added, %d removed", len(d.Added), len(d.Removed))
			return s.transitionTx(ctx, tx, key, &cur, medtype.StateLate, u, cas{})
		default:
			_, err := tx.ExecContext(ctx, s.d.stmts.get("StoreFiles"),
				jsonOrNull(files), hash, s.d.timeArg(clock(now)), key.Domain, key.Date, string(cur.Status))
			return err
		}
	})
	if err != nil {
		return Discovery{}, err
	}
	return d, nil
}

func (s *sqlStore) Archive(ctx context.Context, key medtype.PartitionKey, runID, message string, now time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		at := s.d.timeArg(clock(now))
		res, err := tx.ExecContext(ctx, s.d.stmts.get("Archive"), at, key.Domain, key.Date)
		if err != nil {
			return fmt.Errorf("meta: archive %s: %w", key, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return &TransitionError{Key: key, From: medtype.StateDone, To: medtype.StateArchived, Err: ErrConflict}
		}
		_, err = tx.ExecContext(ctx, s.d.stmts.get("InsertEvent"), key.Domain, key.Date, string(medtype.StateDone), string(medtype.StateArchived),
			nullStr(runID), nil, nullStr(message), at)
		return err
	})
}

// diff returns the keys only in b (added) and only in a (removed); both
// inputs are sorted.
func diff(a, b []string) (added, removed []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			removed = append(removed, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			added = append(added, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return added, removed
}

func (s *sqlStore) Requeue(ctx context.Context, domain string, maxRetries int, runID string, now time.Time) (RequeueResult, error) {
	var res RequeueResult
	parts, err := s.List(ctx, Filter{Domains: []string{domain}, States: []State{medtype.StateFailed, medtype.StateLate}})
	if err != nil {
		return res, err
	}
	for _, p := range parts {
		to := medtype.StateReprocessing
		u := Update{RunID: runID, Now: now}
		if p.Status == medtype.StateFailed {
			to = medtype.StateRetrying
			u.Message = fmt.Sprintf("retry %d of %d", p.RetryCount+1, maxRetries)
			if p.RetryExempt {
				u.Message = fmt.Sprintf("retry after an interruption, not counted (%d of %d retries used)", p.RetryCount, maxRetries)
			} else if p.RetryCount >= maxRetries {
				to = medtype.StateDead
				u.Message = fmt.Sprintf("failed after %d retries: %s", p.RetryCount, p.ErrorMessage)
			}
		}
		_, err := s.Transition(ctx, p.Key, to, u)
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotAllowed) {
			continue // another run moved it first
		}
		if err != nil {
			return res, err
		}
		switch to {
		case medtype.StateRetrying:
			res.Retrying = append(res.Retrying, p.Key)
		case medtype.StateDead:
			res.Dead = append(res.Dead, p.Key)
		default:
			res.Reprocessing = append(res.Reprocessing, p.Key)
		}
	}
	return res, nil
}

// Claim is the named statement Claim: on PostgreSQL one statement (a CTE
// that locks queued rows FOR UPDATE SKIP LOCKED, leases them, writes their
// history and returns them); on SQLite an UPDATE … RETURNING after its
// history rows, inside one IMMEDIATE transaction. The rows are read inside
// the transaction: once it commits the caller holds them.
func (s *sqlStore) Claim(ctx context.Context, p ClaimParams) ([]Partition, error) {
	if p.Worker == "" {
		return nil, errors.New("meta: claim needs a worker id")
	}
	if p.Limit <= 0 {
		p.Limit = 1
	}
	if p.LeaseTTL <= 0 {
		p.LeaseTTL = 10 * time.Minute
	}
	now := clock(p.Now)
	args := []any{s.d.listArg(p.Filter.Domains), dateArg(p.Filter.From), dateArg(p.Filter.To), p.Limit,
		nullStr(p.RunID), p.Worker, s.d.timeArg(now.Add(p.LeaseTTL)), s.d.timeArg(now)}
	var out []Partition
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		if history, ok := s.d.stmts["ClaimHistory"]; ok {
			if _, err := tx.ExecContext(ctx, history, args...); err != nil {
				return fmt.Errorf("meta: claim: %w", err)
			}
		}
		rows, err := tx.QueryContext(ctx, s.d.stmts.get("Claim"), args...)
		if err != nil {
			return fmt.Errorf("meta: claim: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			part, err := scanPartition(rows)
			if err != nil {
				return err
			}
			out = append(out, part)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	// SQLite's RETURNING has no order.
	slices.SortFunc(out, func(a, b Partition) int {
		if c := a.Key.Date.Time().Compare(b.Key.Date.Time()); c != 0 {
			return c
		}
		return strings.Compare(a.Key.Domain, b.Key.Domain)
	})
	return out, nil
}

func dateArg(d medtype.Date) any {
	if d.IsZero() {
		return nil
	}
	return d
}

// InLease runs fn in a transaction that first checks that l is still held
// and unexpired at now (ErrLeaseLost otherwise) and keeps it from being
// rescued or finished until the transaction ends: what fn writes commits
// only while the lease holds. It is the fence of a worker's Iceberg
// commits, whose catalog shares the store's database.
func (s *sqlStore) InLease(ctx context.Context, l Lease, now time.Time, fn func(Tx) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if q, ok := s.d.stmts["FenceTimeout"]; ok {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("meta: lease fence: %w", err)
			}
		}
		var one int
		err := tx.QueryRowContext(ctx, s.d.stmts.get("HoldLease"), l.Key.Domain, l.Key.Date, l.Worker, l.Attempt, s.d.timeArg(clock(now))).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("meta: %s by %s (attempt %d): %w", l.Key, l.Worker, l.Attempt, ErrLeaseLost)
		}
		if err != nil {
			return fmt.Errorf("meta: lease fence of %s: %w", l.Key, err)
		}
		return fn(leaseTx{s: s, tx: tx})
	})
}

type leaseTx struct {
	s  *sqlStore
	tx *sql.Tx
}

func (t leaseTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.s.exec(ctx, t.tx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *sqlStore) Heartbeat(ctx context.Context, key medtype.PartitionKey, worker string, attempt int, ttl time.Duration, now time.Time) error {
	now = clock(now)
	res, err := s.db.ExecContext(ctx, s.d.stmts.get("Heartbeat"), s.d.timeArg(now.Add(ttl)), s.d.timeArg(now), key.Domain, key.Date, worker, attempt)
	if err != nil {
		return fmt.Errorf("meta: heartbeat %s: %w", key, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("meta: heartbeat %s by %s: %w", key, worker, ErrLeaseLost)
	}
	return nil
}

func (s *sqlStore) RescueExpired(ctx context.Context, runID string, now time.Time) ([]Partition, error) {
	now = clock(now)
	parts, err := s.List(ctx, Filter{States: []State{medtype.StateInFlight}})
	if err != nil {
		return nil, err
	}
	var out []Partition
	for _, p := range parts {
		if !p.LeaseExpiresAt.Before(now) {
			continue
		}
		msg := fmt.Sprintf("lease of worker %s expired at %s (worker crashed or stalled)", p.LeasedBy, p.LeaseExpiresAt.Format(time.RFC3339))
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			// A row a worker's lease fence holds is committing now;
			// the next rescue sees how that ended.
			cur, err := s.getTx(ctx, tx, p.Key, s.d.skipLocked)
			if err != nil {
				return err
			}
			return s.transitionTx(ctx, tx, p.Key, &cur, medtype.StateFailed, Update{RunID: runID, Error: msg, Interrupted: true, Now: now},
				cas{leaseHolder: p.LeasedBy, attempt: p.Attempts, expiredBefore: now})
		})
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrNotAllowed) || errors.Is(err, ErrNotFound) {
			continue // finished, renewed, rescued by someone else meanwhile, or fenced now
		}
		if err != nil {
			return out, err
		}
		rescued, err := s.committed(ctx, p.Key)
		if err != nil {
			return out, err
		}
		out = append(out, rescued)
	}
	return out, nil
}

// ---- run log and locks -----------------------------------------------------

func (s *sqlStore) StartRun(ctx context.Context, r Run) error {
	if r.Outcome == "" {
		r.Outcome = "running"
	}
	_, err := s.db.ExecContext(ctx, s.d.stmts.get("StartRun"), r.ID, r.Command, r.Host, r.PID, s.d.timeArg(clock(r.StartedAt)), r.Outcome, r.Partitions, r.Done, r.Failed)
	if err != nil {
		return fmt.Errorf("meta: start run %s: %w", r.ID, err)
	}
	return nil
}

func (s *sqlStore) FinishRun(ctx context.Context, r Run) error {
	res, err := s.db.ExecContext(ctx, s.d.stmts.get("FinishRun"), s.d.timeArg(clock(r.FinishedAt)), r.Outcome, r.Partitions, r.Done, r.Failed, nullStr(r.Error), r.ID)
	if err != nil {
		return fmt.Errorf("meta: finish run %s: %w", r.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("meta: finish run %s: no such run", r.ID)
	}
	return nil
}

func (s *sqlStore) Runs(ctx context.Context, limit int) ([]Run, error) {
	if limit <= 0 {
		limit = 20
	}
	rows, err := s.db.QueryContext(ctx, s.d.stmts.get("Runs"), limit)
	if err != nil {
		return nil, fmt.Errorf("meta: runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var (
			r                 Run
			started, finished timeCol
			errMsg            sql.NullString
		)
		if err := rows.Scan(&r.ID, &r.Command, &r.Host, &r.PID, &started, &finished, &r.Outcome, &r.Partitions, &r.Done, &r.Failed, &errMsg); err != nil {
			return nil, err
		}
		r.StartedAt, r.FinishedAt, r.Error = started.t, finished.t, errMsg.String
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *sqlStore) Maintained(ctx context.Context) (map[string]Maintained, error) {
	rows, err := s.db.QueryContext(ctx, s.d.stmts.get("Maintained"))
	if err != nil {
		return nil, fmt.Errorf("meta: table maintenance: %w", err)
	}
	defer rows.Close()
	out := map[string]Maintained{}
	for rows.Next() {
		var (
			m  Maintained
			at timeCol
		)
		if err := rows.Scan(&m.Table, &m.MetadataLocation, &at); err != nil {
			return nil, err
		}
		m.At = at.t
		out[m.Table] = m
	}
	return out, rows.Err()
}

func (s *sqlStore) RecordMaintained(ctx context.Context, m Maintained) error {
	_, err := s.db.ExecContext(ctx, s.d.stmts.get("RecordMaintained"), m.Table, m.MetadataLocation, s.d.timeArg(clock(m.At)))
	if err != nil {
		return fmt.Errorf("meta: record maintenance of %s: %w", m.Table, err)
	}
	return nil
}

func (s *sqlStore) Listing(ctx context.Context, domain string) (Listing, error) {
	var l Listing
	for _, q := range []struct {
		name string
		date *medtype.Date
	}{{"OldestPartition", &l.Oldest}, {"NewestPartition", &l.Newest}} {
		err := s.db.QueryRowContext(ctx, s.d.stmts.get(q.name), domain).Scan(q.date)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return l, fmt.Errorf("meta: partitions of %s: %w", domain, err)
		}
	}
	var at timeCol
	err := s.db.QueryRowContext(ctx, s.d.stmts.get("ListedAll"), domain).Scan(&at)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("meta: bronze listing of %s: %w", domain, err)
	}
	l.ListedAll = at.t
	return l, nil
}

func (s *sqlStore) RecordFullListing(ctx context.Context, domain string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, s.d.stmts.get("RecordFullListing"), domain, s.d.timeArg(clock(at)))
	if err != nil {
		return fmt.Errorf("meta: record the bronze listing of %s: %w", domain, err)
	}
	return nil
}

func (s *sqlStore) AlertOnce(ctx context.Context, key medtype.PartitionKey, cause string, at time.Time) (bool, error) {
	rows, err := s.db.QueryContext(ctx, s.d.stmts.get("AlertOnce"), key.Domain, key.Date, cause, s.d.timeArg(clock(at)))
	if err != nil {
		return false, fmt.Errorf("meta: record the %s alert of %s: %w", cause, key, err)
	}
	defer rows.Close()
	send := rows.Next()
	return send, rows.Close()
}

func (s *sqlStore) ForgetAlert(ctx context.Context, key medtype.PartitionKey, cause string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, s.d.stmts.get("ForgetAlert"), key.Domain, key.Date, cause, s.d.timeArg(clock(at))); err != nil {
		return fmt.Errorf("meta: forget the %s alert of %s: %w", cause, key, err)
	}
	return nil
}

func (s *sqlStore) TryLock(ctx context.Context, name string) (func() error, error) {
	return s.d.tryLock(ctx, name)
}

func scanExtract(sc interface{ Scan(...any) error }) (ExtractState, error) {
	var (
		e                     ExtractState
		run, success, updated timeCol
		lastError             sql.NullString
		wal                   sql.NullInt64
	)
	err := sc.Scan(&e.Source, &e.Extract, &e.Mode, &e.Position, &e.Rows, &run, &success, &lastError, &updated, &wal)
	e.LastRunAt, e.LastSuccessAt, e.UpdatedAt, e.LastError = run.t, success.t, updated.t, lastError.String
	e.RetainedWAL = -1
	if wal.Valid {
		e.RetainedWAL = wal.Int64
	}
	return e, err
}

func (s *sqlStore) Extract(ctx context.Context, source, extract string) (ExtractState, error) {
	e, err := scanExtract(s.db.QueryRowContext(ctx, s.d.stmts.get("GetExtract"), source, extract))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("meta: extract %s.%s: %w", source, extract, ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("meta: extract %s.%s: %w", source, extract, err)
	}
	return e, nil
}

func (s *sqlStore) Extracts(ctx context.Context) ([]ExtractState, error) {
	rows, err := s.db.QueryContext(ctx, s.d.stmts.get("ListExtracts"))
	if err != nil {
		return nil, fmt.Errorf("meta: extracts: %w", err)
	}
	defer rows.Close()
	var out []ExtractState
	for rows.Next() {
		e, err := scanExtract(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *sqlStore) AdvanceExtract(ctx context.Context, e ExtractState, from string, at time.Time) error {
	stmt := "AdvanceExisting"
	if from == "" {
		stmt = "AdvanceExtract"
	}
	res, err := s.db.ExecContext(ctx, s.d.stmts.get(stmt), e.Source, e.Extract, e.Mode, from, e.Position, e.Rows, s.d.timeArg(clock(at)))
	if err != nil {
		return fmt.Errorf("meta: advance extract %s.%s: %w", e.Source, e.Extract, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("meta: advance extract %s.%s from %q: %w", e.Source, e.Extract, from, ErrConflict)
	}
	return nil
}

func (s *sqlStore) FailExtract(ctx context.Context, source, extract, mode, message string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, s.d.stmts.get("FailExtract"), source, extract, mode, s.d.timeArg(clock(at)), message)
	if err != nil {
		return fmt.Errorf("meta: record the failure of extract %s.%s: %w", source, extract, err)
	}
	return nil
}

func (s *sqlStore) NotifyWork(ctx context.Context) error {
	if s.work == nil {
		return nil
	}
	return s.work.notify(ctx)
}

func (s *sqlStore) WaitForWork(ctx context.Context, d time.Duration) error {
	if s.work == nil {
		return sleep(ctx, d)
	}
	return s.work.wait(ctx, d)
}

func (s *sqlStore) RecordRetainedWAL(ctx context.Context, source, extract string, bytes int64) error {
	if _, err := s.db.ExecContext(ctx, s.d.stmts.get("RecordRetainedWAL"), source, extract, bytes); err != nil {
		return fmt.Errorf("meta: record the retained WAL of extract %s.%s: %w", source, extract, err)
	}
	return nil
}

func (s *sqlStore) ForgetExtract(ctx context.Context, source, extract string) error {
	if _, err := s.db.ExecContext(ctx, s.d.stmts.get("ForgetExtract"), source, extract); err != nil {
		return fmt.Errorf("meta: forget extract %s.%s: %w", source, extract, err)
	}
	return nil
}

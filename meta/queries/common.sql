-- Named statements both stores run. Parameters are numbered ?1, ?2, ...;
-- the PostgreSQL store reads them as $1, $2, .... A dialect's own file
-- (postgres.sql, sqlite.sql) adds what differs.

-- name: GetPartition
-- The caller appends the dialect's row lock.
SELECT domain, partition_date, status, run_id, record_count, silver_records, gold_records,
    source_files, file_hash, retry_count, attempts, error_message, silver_path, gold_path, snapshots,
    leased_by, lease_expires_at, duration_ms, created_at, updated_at, processed_at, retry_exempt, archived_at
FROM medallion_partitions WHERE domain = ?1 AND partition_date = ?2

-- name: InsertPartition
-- An undiscovered partition's row starts PENDING, the one state it may
-- enter; Transition then applies the update to it.
INSERT INTO medallion_partitions (domain, partition_date, status, created_at, updated_at)
VALUES (?1, ?2, 'PENDING', ?3, ?3);

-- name: Transition
-- The one writer of status: a compare-and-set of (?1, ?2) from state ?3 to
-- ?4 at ?5. A NULL value (?6-?15) leaves its column as it is. Entering
-- IN_FLIGHT leases to ?16 until ?17 and counts an attempt; leaving it
-- drops the lease. ?20 and ?21 (0: any) fence a lease holder and attempt,
-- ?22 requires the lease to have expired before it. (A parameter's first
-- use types it on PostgreSQL: "?20 IS NULL" first would leave it unknown.)
UPDATE medallion_partitions SET
    status = ?4,
    updated_at = ?5,
    run_id = COALESCE(?6, run_id),
    record_count = COALESCE(?7, record_count),
    silver_records = COALESCE(?8, silver_records),
    gold_records = COALESCE(?9, gold_records),
    source_files = COALESCE(?10, source_files),
    file_hash = COALESCE(?11, file_hash),
    silver_path = COALESCE(?12, silver_path),
    gold_path = COALESCE(?13, gold_path),
    snapshots = COALESCE(?14, snapshots),
    duration_ms = COALESCE(?15, duration_ms),
    leased_by = CASE WHEN ?4 = 'IN_FLIGHT' THEN ?16 WHEN status = 'IN_FLIGHT' THEN NULL ELSE leased_by END,
    lease_expires_at = CASE WHEN ?4 = 'IN_FLIGHT' THEN ?17 WHEN status = 'IN_FLIGHT' THEN NULL ELSE lease_expires_at END,
    attempts = attempts + CASE WHEN ?4 = 'IN_FLIGHT' THEN 1 ELSE 0 END,
    processed_at = CASE WHEN ?4 = 'DONE' THEN ?5 ELSE processed_at END,
    error_message = CASE WHEN ?4 = 'FAILED' THEN ?18 WHEN ?4 IN ('DONE', 'PENDING') THEN NULL ELSE error_message END,
    retry_exempt = CASE WHEN ?4 = 'FAILED' THEN ?19 ELSE retry_exempt END,
    -- An interruption is retried without counting against max_retries.
    retry_count = CASE WHEN ?4 = 'RETRYING' THEN retry_count + CASE WHEN retry_exempt THEN 0 ELSE 1 END
        WHEN ?4 = 'PENDING' THEN 0 ELSE retry_count END
WHERE domain = ?1 AND partition_date = ?2 AND status = ?3
    AND (leased_by = ?20 OR ?20 IS NULL)
    AND (attempts = ?21 OR ?21 = 0)
    AND (lease_expires_at < ?22 OR ?22 IS NULL);

-- name: InsertEvent
INSERT INTO medallion_partition_events (domain, partition_date, from_status, to_status, run_id, worker, message, at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8);

-- name: StoreFiles
-- Discovery of a partition neither new, DONE nor IN_FLIGHT: the new list.
UPDATE medallion_partitions SET source_files = ?1, file_hash = ?2, updated_at = ?3
WHERE domain = ?4 AND partition_date = ?5 AND status = ?6;

-- name: Archive
UPDATE medallion_partitions SET archived_at = ?1, updated_at = ?1
WHERE domain = ?2 AND partition_date = ?3 AND status = 'DONE' AND archived_at IS NULL;

-- name: Heartbeat
UPDATE medallion_partitions SET lease_expires_at = ?1, updated_at = ?2
WHERE domain = ?3 AND partition_date = ?4 AND status = 'IN_FLIGHT' AND leased_by = ?5 AND attempts = ?6;

-- name: Summary
SELECT domain, CASE WHEN archived_at IS NULL THEN status ELSE 'ARCHIVED' END AS state, count(*)
FROM medallion_partitions GROUP BY domain, state ORDER BY domain, state;

-- name: History
SELECT id, domain, partition_date, from_status, to_status, run_id, worker, message, at
FROM medallion_partition_events WHERE domain = ?1 AND partition_date = ?2 ORDER BY id DESC LIMIT ?3;

-- name: StartRun
INSERT INTO medallion_runs (run_id, command, host, pid, started_at, outcome, partitions, done, failed)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9);

-- name: FinishRun
UPDATE medallion_runs SET finished_at = ?1, outcome = ?2, partitions = ?3, done = ?4, failed = ?5, error = ?6
WHERE run_id = ?7;

-- name: Runs
SELECT run_id, command, host, pid, started_at, finished_at, outcome, partitions, done, failed, error
FROM medallion_runs ORDER BY started_at DESC, run_id DESC LIMIT ?1;

-- name: Maintained
SELECT table_name, metadata_location, maintained_at FROM medallion_table_maintenance;

-- name: RecordMaintained
INSERT INTO medallion_table_maintenance (table_name, metadata_location, maintained_at) VALUES (?1, ?2, ?3)
ON CONFLICT (table_name) DO UPDATE SET metadata_location = excluded.metadata_location, maintained_at = excluded.maintained_at;

-- name: OldestPartition
-- Two index lookups, not min() and max() in one: SQLite reads the whole
-- domain for those.
SELECT partition_date FROM medallion_partitions WHERE domain = ?1 ORDER BY partition_date ASC LIMIT 1;

-- name: NewestPartition
SELECT partition_date FROM medallion_partitions WHERE domain = ?1 ORDER BY partition_date DESC LIMIT 1;

-- name: ListedAll
SELECT listed_all_at FROM medallion_bronze_listing WHERE domain = ?1;

-- name: RecordFullListing
INSERT INTO medallion_bronze_listing (domain, listed_all_at) VALUES (?1, ?2)
ON CONFLICT (domain) DO UPDATE SET listed_all_at = excluded.listed_all_at;

-- name: GetExtract
SELECT source, extract, mode, position, rows_total, last_run_at, last_success_at, last_error, updated_at, retained_wal
FROM medallion_extracts WHERE source = ?1 AND extract = ?2;

-- name: ListExtracts
SELECT source, extract, mode, position, rows_total, last_run_at, last_success_at, last_error, updated_at, retained_wal
FROM medallion_extracts ORDER BY source, extract;

-- name: AdvanceExtract
-- Moves (?1, ?2) from position ?4 to ?5 at ?7, adding ?6 rows: a
-- compare-and-set, so of two extractors that read the same position only
-- one moves it. This is the first advance (from ''), which may insert the
-- row; AdvanceExisting moves one from a position already recorded.
INSERT INTO medallion_extracts AS e (source, extract, mode, position, rows_total, last_run_at, last_success_at, last_error, updated_at)
VALUES (?1, ?2, ?3, ?5, ?6, ?7, ?7, NULL, ?7)
ON CONFLICT (source, extract) DO UPDATE SET position = excluded.position, mode = excluded.mode,
    rows_total = e.rows_total + excluded.rows_total, last_run_at = excluded.last_run_at,
    last_success_at = excluded.last_success_at, last_error = NULL, updated_at = excluded.updated_at
WHERE e.position = ?4;

-- name: AdvanceExisting
UPDATE medallion_extracts SET position = ?5, mode = ?3, rows_total = rows_total + ?6, last_run_at = ?7,
    last_success_at = ?7, last_error = NULL, updated_at = ?7
WHERE source = ?1 AND extract = ?2 AND position = ?4;

-- name: FailExtract
-- Records a failed run; the position stays.
INSERT INTO medallion_extracts AS e (source, extract, mode, position, last_run_at, last_error, updated_at)
VALUES (?1, ?2, ?3, '', ?4, ?5, ?4)
ON CONFLICT (source, extract) DO UPDATE SET last_run_at = excluded.last_run_at, last_error = excluded.last_error,
    updated_at = excluded.updated_at;

-- name: RecordRetainedWAL
UPDATE medallion_extracts SET retained_wal = ?3 WHERE source = ?1 AND extract = ?2;

-- name: ForgetExtract
DELETE FROM medallion_extracts WHERE source = ?1 AND extract = ?2;

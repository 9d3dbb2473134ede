-- Named statements of the PostgreSQL store. Parameters are numbered; the
-- SQLite file names the same statements with the same parameters.

-- name: Claim
-- One statement: lock up to $4 queued partitions no other claimer holds
-- (oldest date first), lease them, record each move in the history, and
-- return them as they now are.
WITH picked AS (
    SELECT domain, partition_date, status AS from_status
    FROM medallion_partitions
    WHERE status IN ('PENDING', 'RETRYING', 'REPROCESSING')
        AND (cardinality($1::text[]) = 0 OR domain = ANY ($1::text[]))
        AND ($2::date IS NULL OR partition_date >= $2::date)
        AND ($3::date IS NULL OR partition_date <= $3::date)
    ORDER BY partition_date, domain
    LIMIT $4
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE medallion_partitions p
    SET status = 'IN_FLIGHT', run_id = COALESCE($5, p.run_id), leased_by = $6, lease_expires_at = $7,
        attempts = p.attempts + 1, updated_at = $8
    FROM picked
    WHERE p.domain = picked.domain AND p.partition_date = picked.partition_date
    RETURNING p.*, picked.from_status
), logged AS (
    INSERT INTO medallion_partition_events (domain, partition_date, from_status, to_status, run_id, worker, at)
    SELECT domain, partition_date, from_status, 'IN_FLIGHT', $5, $6, $8 FROM claimed
)
SELECT domain, partition_date, status, run_id, record_count, silver_records, gold_records,
    source_files, file_hash, retry_count, attempts, error_message, silver_path, gold_path, snapshots,
    leased_by, lease_expires_at, duration_ms, created_at, updated_at, processed_at, retry_exempt, archived_at
FROM claimed
ORDER BY partition_date, domain;

-- name: HoldLease
-- The lease fence: the row of a partition its worker still holds, locked
-- against every transition (which all lock FOR UPDATE) until the
-- transaction ends; heartbeats (plain UPDATEs) still pass.
SELECT 1 FROM medallion_partitions
WHERE domain = $1 AND partition_date = $2 AND status = 'IN_FLIGHT'
    AND leased_by = $3 AND attempts = $4 AND lease_expires_at > $5
FOR KEY SHARE;

-- name: FenceTimeout
-- A fenced transaction whose process stops (SIGSTOP) is ended by the
-- server, which releases the row so that the lease can be rescued.
SET LOCAL idle_in_transaction_session_timeout = '30s';

-- name: AlertOnce
-- Records that an alert for ($1, $2, $3) is sent at $4 and returns a row,
-- unless one was sent after the partition was last DONE.
INSERT INTO medallion_alerts AS a (domain, partition_date, cause, sent_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (domain, partition_date, cause) DO UPDATE SET sent_at = EXCLUDED.sent_at
WHERE a.sent_at < (SELECT p.processed_at FROM medallion_partitions p
    WHERE p.domain = a.domain AND p.partition_date = a.partition_date)
RETURNING 1;

-- name: ForgetAlert
DELETE FROM medallion_alerts WHERE domain = $1 AND partition_date = $2 AND cause = $3 AND sent_at = $4;

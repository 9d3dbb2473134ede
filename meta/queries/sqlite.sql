-- Named statements of the SQLite store, with the parameters of the
-- PostgreSQL file. Transactions are IMMEDIATE: one writer at a time.

-- name: ClaimHistory
-- SQLite has no data-modifying CTE: the history of a claim is written
-- first, from the rows Claim then leases (the same rows: no other writer
-- runs inside the transaction).
INSERT INTO medallion_partition_events (domain, partition_date, from_status, to_status, run_id, worker, at)
SELECT domain, partition_date, status, 'IN_FLIGHT', ?5, ?6, ?8
FROM medallion_partitions
WHERE status IN ('PENDING', 'RETRYING', 'REPROCESSING')
    AND (json_array_length(?1) = 0 OR +domain IN (SELECT value FROM json_each(?1)))
    AND (?2 IS NULL OR partition_date >= ?2)
    AND (?3 IS NULL OR partition_date <= ?3)
ORDER BY partition_date, domain
LIMIT ?4;

-- name: Claim
UPDATE medallion_partitions
SET status = 'IN_FLIGHT', run_id = COALESCE(?5, run_id), leased_by = ?6, lease_expires_at = ?7,
    attempts = attempts + 1, updated_at = ?8
WHERE (domain, partition_date) IN (
    SELECT domain, partition_date
    FROM medallion_partitions
    WHERE status IN ('PENDING', 'RETRYING', 'REPROCESSING')
        AND (json_array_length(?1) = 0 OR +domain IN (SELECT value FROM json_each(?1)))
        AND (?2 IS NULL OR partition_date >= ?2)
        AND (?3 IS NULL OR partition_date <= ?3)
    ORDER BY partition_date, domain
    LIMIT ?4)
RETURNING domain, partition_date, status, run_id, record_count, silver_records, gold_records,
    source_files, file_hash, retry_count, attempts, error_message, silver_path, gold_path, snapshots,
    leased_by, lease_expires_at, duration_ms, created_at, updated_at, processed_at, retry_exempt, archived_at;

-- name: HoldLease
SELECT 1 FROM medallion_partitions
WHERE domain = ?1 AND partition_date = ?2 AND status = 'IN_FLIGHT'
    AND leased_by = ?3 AND attempts = ?4 AND lease_expires_at > ?5;

-- name: AlertOnce
INSERT INTO medallion_alerts AS a (domain, partition_date, cause, sent_at)
VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (domain, partition_date, cause) DO UPDATE SET sent_at = excluded.sent_at
WHERE a.sent_at < (SELECT p.processed_at FROM medallion_partitions p
    WHERE p.domain = a.domain AND p.partition_date = a.partition_date)
RETURNING 1;

-- name: ForgetAlert
DELETE FROM medallion_alerts WHERE domain = ?1 AND partition_date = ?2 AND cause = ?3 AND sent_at = ?4;

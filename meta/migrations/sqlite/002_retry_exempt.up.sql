-- A failure that was an interruption (a shutdown, a lease rescued after a
-- crash) is retried without counting against max_retries.
ALTER TABLE medallion_partitions ADD COLUMN retry_exempt INTEGER NOT NULL DEFAULT 0;

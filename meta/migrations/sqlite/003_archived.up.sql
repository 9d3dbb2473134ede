-- A DONE partition whose bronze files bronze.retention deleted: it cannot be
-- rebuilt, so late-data detection and backfill leave it alone.
ALTER TABLE medallion_partitions ADD COLUMN archived_at TEXT;

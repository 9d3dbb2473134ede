-- How much WAL the server kept for a cdc extract's replication slot when
-- the extract last looked (bytes), so that status can warn without
-- connecting to every source.
ALTER TABLE medallion_extracts ADD COLUMN retained_wal BIGINT;

-- The state a table was in when maintain last did a full pass over it: an
-- automatic maintain after an idle run skips a table that has not changed
-- since, until lake.orphan_age has passed.
CREATE TABLE medallion_table_maintenance (
    table_name        TEXT PRIMARY KEY,
    metadata_location TEXT NOT NULL,
    maintained_at     TIMESTAMPTZ NOT NULL
);

-- Discovery reads every partition's file hash on each run: a covering
-- index keeps that read off the wide partition rows.
CREATE INDEX medallion_partitions_file_hash ON medallion_partitions (domain, partition_date, file_hash);

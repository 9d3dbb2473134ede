-- Partition state machine, history and run log (SQLite).
-- Times are UTC text in a fixed-width format (2006-01-02T15:04:05.000000Z),
-- so text comparison orders them correctly.
CREATE TABLE medallion_partitions (
    domain           TEXT    NOT NULL,
    partition_date   TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('PENDING','IN_FLIGHT','DONE','FAILED','RETRYING','DEAD','LATE','REPROCESSING')),
    run_id           TEXT,
    record_count     INTEGER NOT NULL DEFAULT 0,
    silver_records   INTEGER NOT NULL DEFAULT 0,
    gold_records     INTEGER NOT NULL DEFAULT 0,
    source_files     TEXT    NOT NULL DEFAULT '[]',
    file_hash        TEXT    NOT NULL DEFAULT '',
    retry_count      INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    error_message    TEXT,
    silver_path      TEXT,
    gold_path        TEXT,
    snapshots        TEXT    NOT NULL DEFAULT '{}',
    leased_by        TEXT,
    lease_expires_at TEXT,
    duration_ms      INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    processed_at     TEXT,
    PRIMARY KEY (domain, partition_date)
);
CREATE INDEX medallion_partitions_queue ON medallion_partitions (status, partition_date, domain);

CREATE TABLE medallion_partition_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    domain         TEXT NOT NULL,
    partition_date TEXT NOT NULL,
    from_status    TEXT NOT NULL,
    to_status      TEXT NOT NULL,
    run_id         TEXT,
    worker         TEXT,
    message        TEXT,
    at             TEXT NOT NULL
);
CREATE INDEX medallion_partition_events_key ON medallion_partition_events (domain, partition_date, id);

CREATE TABLE medallion_runs (
    run_id      TEXT PRIMARY KEY,
    command     TEXT    NOT NULL,
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  TEXT    NOT NULL,
    finished_at TEXT,
    outcome     TEXT    NOT NULL,
    partitions  INTEGER NOT NULL DEFAULT 0,
    done        INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX medallion_runs_started ON medallion_runs (started_at);

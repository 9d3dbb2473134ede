-- Where each extract of a PostgreSQL source has got to: its position
-- (a watermark and tie-breaker key, a confirmed LSN, or the time of the last
-- snapshot; the extractor owns its format), moved only by a compare-and-set
-- once the rows up to it are durable, and its last run.
CREATE TABLE medallion_extracts (
    source          TEXT        NOT NULL,
    extract         TEXT        NOT NULL,
    mode            TEXT        NOT NULL,
    position        TEXT        NOT NULL DEFAULT '',
    rows_total      BIGINT      NOT NULL DEFAULT 0,
    last_run_at     TIMESTAMPTZ,
    last_success_at TIMESTAMPTZ,
    last_error      TEXT,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, extract)
);

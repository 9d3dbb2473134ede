-- The alerts sent, one row per partition and cause: an alert fires again
-- only once the partition has been DONE since it was sent.
CREATE TABLE medallion_alerts (
    domain         TEXT NOT NULL,
    partition_date TEXT NOT NULL,
    cause          TEXT NOT NULL,
    sent_at        TEXT NOT NULL,
    PRIMARY KEY (domain, partition_date, cause)
);

-- When a run last listed all of a domain's bronze files: the runs between
-- two full listings list only the recent partitions (bronze.listing.full_every).
CREATE TABLE medallion_bronze_listing (
    domain        TEXT PRIMARY KEY,
    listed_all_at TEXT NOT NULL
);

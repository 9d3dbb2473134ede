// Package domains is the plugin registry of Medallion's domains, and the
// home of the four reference domains (events, orders, restaurants, users).
//
// A domain is one folder, domains/<name>/, and one Go package: domain.yaml
// (topics, partition key, timestamp field, primary key, dedup, gold
// tables), sql/ (its SQL) and, optionally, extract/ (its built-in
// PostgreSQL extracts, one <mode>.yaml each, with their queries). Adding
// one needs no change to the framework. A user's config/domains/<name>.yaml
// replaces a built-in domain's domain.yaml, or adds a domain whose SQL is
// registered.
//
// # How to add a domain
//
//  1. Create domains/<name>/domain.yaml (copy orders' one). name must
//     match the folder. List every gold table with its merge keys and mode.
//
//  2. Add a file that embeds the folder and registers it from init():
//
//     //go:embed domain.yaml sql
//     var files embed.FS
//     func init() { domains.MustRegisterFolder("<name>", files) }
//
//  3. Write sql/parse.sql, sql/silver/<name>.sql (and one file per further
//     silver table), and sql/gold/<table>.sql for each gold table. Each file
//     is one SELECT; a reviewer reads a domain's logic in these files alone.
//
//  4. Add the blank import to domains/all/all.go.
//
//  5. Test it: generate or write bronze for it and run the pipeline test
//     helpers (see pipeline tests and domains/testdata).
//
// # What each SQL file sees and must produce
//
// parse.sql reads the view bronze: the envelope columns _topic, _partition,
// _offset, _key, _kafka_ts, _ingested_at, _headers, payload (raw JSON text),
// _event_ts, and _source_file (the bronze object key). It types every field
// and must output:
//   - the partition key column (a DATE, e.g. event_date);
//   - the typed business columns;
//   - _reason: NULL for a valid row, else why it is invalid ("missing
//     order_id", "unknown status \"lost\""). Invalid rows go to
//     quarantine.<domain> with the raw payload; the rest continue;
//   - the lineage columns _topic, _partition, _offset, _kafka_ts,
//     _source_file and payload, passed through.
//
// Helper macros are defined for it (silver/macros.sql): is_object(payload)
// guards json_transform(payload, '{"field": "JSON", ...}'), whose fields j
// are then read with j_str/j_money/j_double/j_int/j_bool/j_json/j_ts(j)
// (NULL when absent or of another JSON type) and checked with
// expect_str/expect_num/expect_int/expect_bool/expect_ts/expect_list(name,
// j, required) and expect_enum(name, j, allowed, required), which return an
// error text or NULL; parse_ts(text) parses RFC 3339 into a UTC TIMESTAMP.
// Use coalesce(...) of the expect_ calls for _reason: the first error wins.
//
// The framework then drops invalid rows and deduplicates the rest by the
// YAML's primary_key (dedup: latest keeps the greatest order_by, then
// _kafka_ts, _partition, _offset) into the view deduped.
//
// silver/<table>.sql reads deduped and outputs the silver table: the
// partition key column, typed columns, and lineage such as _source_file.
// The framework adds record_hash, the SHA-256 of the columns whose names do
// not start with an underscore, each as text (\N for NULL), joined by the
// unit separator 0x1F. Silver tables are visible to gold as silver_<table>.
//
// gold/<table>.sql reads silver_<table> views (this partition's rows),
// gold_<table> views of gold tables listed earlier in the YAML (their
// content after this run's merge: the whole table for mode current, the
// touched partitions for mode partition), and getvariable('partition_date').
// The framework merges its output into the table by merge_keys: mode
// partition replaces every partition its rows touch (and the run's own
// partition), deleting rows no longer produced; mode current inserts and
// updates (only newer rows by version_column) and never deletes.
package domains

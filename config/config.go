// Package config loads medallion.yaml, the built-in domains and the
// user's config/domains/*.yaml.
//
// Loading is: defaults, then the file (strict: unknown or duplicate keys are
// errors, ${ENV} is interpolated), then MEDALLION_<PATH> environment
// overrides, then the domain files, then validation. Every error names the
// file, line and key, e.g. `medallion.yaml:12: storage.url: unsupported
// scheme "ftp"`.
package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of one Medallion deployment.
type Config struct {
	Storage  Storage  `yaml:"storage"`
	Meta     Meta     `yaml:"meta"`
	Kafka    Kafka    `yaml:"kafka"`
	Sink     Sink     `yaml:"sink"`
	Pipeline Pipeline `yaml:"pipeline"`
	DuckDB   DuckDB   `yaml:"duckdb"`
	Export   Export   `yaml:"export"`
	Lake     Lake     `yaml:"lake"`
	Bronze   Bronze   `yaml:"bronze"`
	Serve    Serve    `yaml:"serve"`
	Alerts   Alerts   `yaml:"alerts"`
	Metrics  Metrics  `yaml:"metrics"`
	// Sources are the PostgreSQL databases medallion extract reads.
	Sources map[string]Source `yaml:"sources"`
	// DomainsDir holds the user's <domain>.yaml files: one named like a
	// built-in domain replaces it, others add domains. Relative to the
	// config file's folder.
	DomainsDir string `yaml:"domains_dir"`
	// Enabled, if set, are the only domains used (built-in or the user's),
	// so a sink does not subscribe to topics a deployment never has.
	Enabled []string `yaml:"domains"`

	// Domains are the enabled domains, sorted by name.
	Domains []Domain `yaml:"-"`
	// File is the config file this was loaded from; "" means the embedded
	// defaults.
	File string `yaml:"-"`
}

// Storage is where bronze files and the Iceberg warehouse live.
type Storage struct {
	// URL is a local folder (a path or file:///abs/path) or s3://bucket/prefix.
	URL string `yaml:"url"`
	S3  S3     `yaml:"s3"`
}

// S3 holds the S3 client settings used when Storage.URL is s3://.
type S3 struct {
	// Endpoint overrides the AWS endpoint, for S3-compatible servers.
	Endpoint string `yaml:"endpoint"`
	Region   string `yaml:"region"`
	// PathStyle addresses buckets as endpoint/bucket instead of
	// bucket.endpoint; most self-hosted servers need it.
	PathStyle bool `yaml:"path_style"`
	// AccessKeyID and SecretAccessKey are static credentials. Leave both
	// empty to use the default AWS chain (env, profile, IRSA, instance role).
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`
	// MultipartThreshold is the size above which uploads go multipart; it is
	// also the part size. S3 requires at least 5MiB.
	MultipartThreshold ByteSize `yaml:"multipart_threshold"`
}

// Meta is the partition state store, which also holds the Iceberg catalog.
type Meta struct {
	// URL is sqlite://path/to/file.db (embedded default) or
	// postgres://user:pass@host:port/db?search_path=schema.
	URL string `yaml:"url"`
}

// Kafka is the cluster the sink consumes from.
type Kafka struct {
	Brokers  []string `yaml:"brokers"`
	GroupID  string   `yaml:"group_id"`
	ClientID string   `yaml:"client_id"`
	// SessionTimeout is the consumer group session: a member silent for
	// longer (a crash, a pause) loses its partitions to the others.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	TLS            TLS           `yaml:"tls"`
	SASL           SASL          `yaml:"sasl"`
}

// TLS configures TLS to the brokers.
type TLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASL configures broker authentication. Put the password in an environment
// variable: password: ${KAFKA_PASSWORD}.
type SASL struct {
	// Mechanism is "", "plain", "scram-sha-256" or "scram-sha-512".
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// Sink tunes the Kafka-to-bronze consumer.
type Sink struct {
	// A buffer (one per Kafka partition and partition date) flushes at
	// FlushMessages, FlushBytes or FlushInterval, whichever comes first;
	// while its partition's previous batch is still being written it reads
	// on, up to sink.ReadAhead times the count and size limits.
	FlushMessages int           `yaml:"flush_messages"`
	FlushBytes    ByteSize      `yaml:"flush_bytes"`
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MemoryBudget and MaxOpenBuffers bound memory (batches being read and
	// being written both count): reaching either makes each partition flush
	// its batch at its next message.
	MemoryBudget   ByteSize `yaml:"memory_budget"`
	MaxOpenBuffers int      `yaml:"max_open_buffers"`
	// HTTPAddr serves /metrics and /healthz; "" disables it.
	HTTPAddr string `yaml:"http_addr"`
	// ShutdownTimeout bounds the flush and commit after SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// TopicWait is how long a topic the brokers do not know is waited for
	// (it may be being created) before the sink stops.
	TopicWait time.Duration `yaml:"topic_wait"`
	// DLQMaxMessageBytes is the largest dead letter the DLQ topic accepts
	// (the broker's message.max.bytes or the topic's max.message.bytes):
	// larger dead letters are truncated to fit.
	DLQMaxMessageBytes ByteSize `yaml:"dlq_max_message_bytes"`
}

// Pipeline tunes `medallion run` and `medallion backfill`.
type Pipeline struct {
	Workers int `yaml:"workers"`
	// LeaseTTL is how long a worker holds a partition before the lease is
	// considered abandoned (a crashed worker) and the partition is retried.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// MaxRetries is how many times a failed partition is retried before it
	// goes DEAD. A domain file may override it.
	MaxRetries int `yaml:"max_retries"`
}

// DuckDB tunes the embedded DuckDB used by silver, gold and query.
type DuckDB struct {
	// MemoryLimit is passed to DuckDB's memory_limit, e.g. "4GB"; "" keeps
	// DuckDB's default (80% of RAM).
	MemoryLimit string `yaml:"memory_limit"`
	// Threads is DuckDB's thread count; 0 uses every core.
	Threads int `yaml:"threads"`
	// SpillDir is where DuckDB spills when a partition exceeds MemoryLimit.
	SpillDir string `yaml:"spill_dir"`
}

// Lake keeps the Iceberg tables healthy over time (`medallion maintain`).
// Serve configures medallion serve, the PostgreSQL-protocol server.
type Serve struct {
	// Addr is where it listens.
	Addr string `yaml:"addr"`
	// Users may connect, authenticated with SCRAM-SHA-256.
	Users []ServeUser `yaml:"users"`
	// StatementTimeout cancels a statement running longer (0: never).
	StatementTimeout Duration `yaml:"statement_timeout"`
	// TLS is the server's certificate; clients that ask for TLS get it.
	TLS ServeTLS `yaml:"tls"`
	// AllowPlaintext lets clients on other machines connect without TLS;
	// loopback clients may always.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// MaxConnections refuses clients beyond it (SQLSTATE 53300).
	MaxConnections int `yaml:"max_connections"`
	// MaxQueries is how many statements run at once; more wait their turn
	// (within statement_timeout).
	MaxQueries int `yaml:"max_queries"`
	// HTTPAddr serves /metrics and /healthz; "" disables it.
	HTTPAddr string `yaml:"http_addr"`
	// ShutdownTimeout is how long SIGTERM waits for running statements
	// before closing the connections.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// ServeTLS names the PEM files of the server's certificate and key.
type ServeTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// ServeUser is one user of medallion serve.
type ServeUser struct {
	Name string `yaml:"name"`
	// Password is the password (write ${ENV_VAR}) or a SCRAM-SHA-256
	// verifier as PostgreSQL stores it: SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>.
	Password string `yaml:"password"`
}

type Lake struct {
	// MaintainAfterRun runs maintain on every table after each `run`.
	MaintainAfterRun bool `yaml:"maintain_after_run"`
	// SnapshotRetention is how far back time travel reaches: older
	// snapshots expire, except the newest MinSnapshots of each table.
	SnapshotRetention Duration `yaml:"snapshot_retention"`
	MinSnapshots      int      `yaml:"min_snapshots"`
	// OrphanAge is how old a file under a table that no metadata references
	// must be before maintain deletes it: a younger one may be a concurrent
	// writer's file that is not committed yet.
	OrphanAge Duration `yaml:"orphan_age"`
	// CompactTargetSize is the size under which a partition's data files
	// count as small; a partition with several small files is compacted
	// into one.
	CompactTargetSize ByteSize `yaml:"compact_target_size"`
}

// Bronze is the raw layer's lifecycle.
type Bronze struct {
	// Retention, when set, has maintain delete the bronze files of DONE
	// partitions whose date is older than this (400d); the partitions become
	// ARCHIVED: their tables keep their rows, but they can no longer be
	// reprocessed. 0 (the default) keeps bronze forever.
	Retention Duration `yaml:"retention"`
	Listing   Listing  `yaml:"listing"`
}

// Listing bounds how much of bronze a run lists. Listing every file is
// linear in the lake's age, so a run lists only the partitions dated
// within Recent of the newest one it tracks (and any newer), and all of
// them when FullEvery has passed since a run last did: a late file in an
// older partition is seen at most FullEvery later.
type Listing struct {
	Recent    Duration `yaml:"recent"`     // whole days, at least 1d
	FullEvery Duration `yaml:"full_every"` // 0 lists all on every run
}

// Export mirrors gold tables into other systems after each commit.
type Export struct {
	Postgres PostgresExport `yaml:"postgres"`
}

// PostgresExport upserts the gold tables marked `export: true` into
// PostgreSQL, so BI tools and PostgREST can read them.
type PostgresExport struct {
	// URL is postgres://user:${PGPASSWORD}@host/db; "" disables the export.
	URL string `yaml:"url"`
	// Schema receives one table per exported gold table (created if missing).
	Schema string `yaml:"schema"`
}

// Alerts says where run and worker send alerts: a partition DEAD, failed,
// past its SLA or reprocessed for late data, and a run that could not
// finish. A partition's alert fires once per partition and cause (again
// only after the partition was DONE since). Nothing is sent when no sink
// is set.
type Alerts struct {
	// WebhookURL receives a Slack-compatible incoming-webhook JSON body
	// ({"text": ...}); write ${SLACK_WEBHOOK_URL}.
	WebhookURL string `yaml:"webhook_url"`
	// Kafka produces each alert as JSON to a topic on kafka.brokers.
	Kafka AlertTopic `yaml:"kafka"`
	// Timeout bounds each delivery.
	Timeout Duration `yaml:"timeout"`
}

// AlertTopic is the Kafka sink of alerts.
type AlertTopic struct {
	Enabled bool   `yaml:"enabled"`
	Topic   string `yaml:"topic"`
}

// Metrics configures the metrics run and worker push at their end.
type Metrics struct {
	// PushgatewayURL is a Prometheus Pushgateway (http://host:9091); ""
	// pushes nothing.
	PushgatewayURL string `yaml:"pushgateway_url"`
	// Job is the job label of the pushed group.
	Job string `yaml:"job"`
}

// ByteSize is a size in bytes, written in YAML as 64MiB, 1GB or 1048576.
type ByteSize int64

// UnmarshalYAML parses human sizes.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := humanize.ParseBytes(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("invalid size %q", n.Value)
	}
	*b = ByteSize(v)
	return nil
}

// MarshalYAML writes sizes the way they are read.
func (b ByteSize) MarshalYAML() (any, error) { return humanize.IBytes(uint64(b)), nil }

func (b ByteSize) String() string { return humanize.IBytes(uint64(b)) }

// Defaults is the embedded configuration: local storage under ./lakehouse and an
// SQLite meta store, which is what `medallion demo` runs on.
func Defaults() Config {
	return Config{
		Storage: Storage{
			URL: "./lakehouse",
			S3:  S3{Region: "us-east-1", MultipartThreshold: 16 << 20},
		},
		Meta: Meta{URL: "sqlite://./medallion.db"},
		Kafka: Kafka{
			Brokers:        []string{"localhost:9092"},
			GroupID:        "medallion-sink",
			ClientID:       "medallion",
			SessionTimeout: 10 * time.Second,
		},
		Sink: Sink{
			FlushMessages:   1000,
			FlushBytes:      32 << 20,
			FlushInterval:   60 * time.Second,
			MemoryBudget:    128 << 20,
			MaxOpenBuffers:  256,
			HTTPAddr:        ":9464",
			ShutdownTimeout: 30 * time.Second,
			TopicWait:       time.Minute,
			// Kafka's default message.max.bytes is 1 MiB and 12 bytes.
			DLQMaxMessageBytes: 1 << 20,
		},
		Pipeline: Pipeline{Workers: 2, LeaseTTL: 10 * time.Minute, MaxRetries: 3},
		DuckDB:   DuckDB{Threads: 0},
		Export:   Export{Postgres: PostgresExport{Schema: "medallion_gold"}},
		Lake: Lake{
			MaintainAfterRun:  true,
			SnapshotRetention: Duration(7 * Day),
			MinSnapshots:      1,
			OrphanAge:         Duration(Day),
			CompactTargetSize: 128 << 20,
		},
		Bronze: Bronze{Listing: Listing{Recent: Duration(7 * Day), FullEvery: Duration(Day)}},
		Serve: Serve{Addr: "127.0.0.1:5433", StatementTimeout: Duration(5 * time.Minute), MaxConnections: 64, MaxQueries: 8,
			HTTPAddr: ":9465", ShutdownTimeout: Duration(30 * time.Second)},
		Alerts:     Alerts{Kafka: AlertTopic{Topic: "pipeline-alerts"}, Timeout: Duration(10 * time.Second)},
		Metrics:    Metrics{Job: "medallion"},
		DomainsDir: "config/domains",
	}
}

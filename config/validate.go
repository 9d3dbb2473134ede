package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

type problem struct{ key, msg string }

type checker struct{ ps []problem }

func (c *checker) add(key, format string, args ...any) {
	c.ps = append(c.ps, problem{key, fmt.Sprintf(format, args...)})
}

func (c *checker) positive(key string, v int64) {
	if v <= 0 {
		c.add(key, "must be greater than 0, got %d", v)
	}
}

// address checks a host:port; empty passes when the setting may be off.
func (c *checker) address(key, addr string, mayBeEmpty bool) {
	if addr == "" && mayBeEmpty {
		return
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		c.add(key, "invalid address %q: want host:port or :port", addr)
	}
}

func (c *checker) oneOf(key, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		c.add(key, "unsupported value %q (want one of: %s)", v, strings.Join(allowed, ", "))
	}
}

func (cfg *Config) validate() []problem {
	var c checker
	cfg.validateStorage(&c)
	cfg.validateMeta(&c)
	cfg.validateKafka(&c)

	s := cfg.Sink
	c.positive("sink.flush_messages", int64(s.FlushMessages))
	c.positive("sink.flush_bytes", int64(s.FlushBytes))
	c.positive("sink.flush_interval", int64(s.FlushInterval))
	c.positive("sink.memory_budget", int64(s.MemoryBudget))
	c.positive("sink.max_open_buffers", int64(s.MaxOpenBuffers))
	c.positive("sink.shutdown_timeout", int64(s.ShutdownTimeout))
	c.positive("sink.topic_wait", int64(s.TopicWait))
	if s.DLQMaxMessageBytes < 4<<10 {
		c.add("sink.dlq_max_message_bytes", "must be at least 4KiB, got %s", s.DLQMaxMessageBytes)
	}
	if s.FlushBytes > s.MemoryBudget {
		c.add("sink.flush_bytes", "must not exceed sink.memory_budget (%s)", s.MemoryBudget)
	}
	c.address("sink.http_addr", s.HTTPAddr, true)

	p := cfg.Pipeline
	c.positive("pipeline.workers", int64(p.Workers))
	c.positive("pipeline.lease_ttl", int64(p.LeaseTTL))
	if p.LeaseTTL > 0 && p.LeaseTTL < time.Second {
		c.add("pipeline.lease_ttl", "must be at least 1s, got %s", p.LeaseTTL)
	}
	if p.MaxRetries < 0 {
		c.add("pipeline.max_retries", "must not be negative, got %d", p.MaxRetries)
	}
	cfg.validateLake(&c)
	if cfg.DuckDB.Threads < 0 {
		c.add("duckdb.threads", "must not be negative, got %d (0 uses every core)", cfg.DuckDB.Threads)
	}
	if m := cfg.DuckDB.MemoryLimit; m != "" && !duckSize.MatchString(m) {
		c.add("duckdb.memory_limit", "invalid size %q (e.g. 4GB, 512MiB)", m)
	}
	if u := cfg.Export.Postgres.URL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "postgres" && pu.Scheme != "postgresql") || pu.Host == "" {
			c.add("export.postgres.url", "invalid URL: want postgres://user@host:5432/db")
		}
		if !identifier.MatchString(cfg.Export.Postgres.Schema) {
			c.add("export.postgres.schema", "invalid schema name %q", cfg.Export.Postgres.Schema)
		}
	}
	cfg.validateServe(&c)
	cfg.validateAlerts(&c)
	cfg.validateSources(&c)
	if cfg.DomainsDir == "" {
		c.add("domains_dir", "must not be empty")
	}
	return c.ps
}

func (cfg *Config) validateServe(c *checker) {
	s := cfg.Serve
	c.address("serve.addr", s.Addr, false)
	c.address("serve.http_addr", s.HTTPAddr, true)
	c.positive("serve.max_connections", int64(s.MaxConnections))
	c.positive("serve.max_queries", int64(s.MaxQueries))
	if s.StatementTimeout < 0 {
		c.add("serve.statement_timeout", "must not be negative, got %s (0: no timeout)", s.StatementTimeout)
	}
	if s.ShutdownTimeout < 0 {
		c.add("serve.shutdown_timeout", "must not be negative, got %s", s.ShutdownTimeout)
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		c.add("serve.tls.cert_file", "set both cert_file and key_file, or neither")
	}
}

func (cfg *Config) validateAlerts(c *checker) {
	a := cfg.Alerts
	httpURL := func(key, raw string) {
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.add(key, "invalid URL: want http(s)://host/path")
		}
	}
	if a.WebhookURL != "" {
		httpURL("alerts.webhook_url", a.WebhookURL)
	}
	if a.Kafka.Enabled {
		if a.Kafka.Topic == "" {
			c.add("alerts.kafka.topic", "must not be empty when alerts.kafka.enabled is true")
		}
		if len(cfg.Kafka.Brokers) == 0 {
			c.add("kafka.brokers", "alerts.kafka.enabled needs the brokers to produce to")
		}
	}
	c.positive("alerts.timeout", int64(a.Timeout))
	if u := cfg.Metrics.PushgatewayURL; u != "" {
		httpURL("metrics.pushgateway_url", u)
		if cfg.Metrics.Job == "" {
			c.add("metrics.job", "must not be empty when metrics.pushgateway_url is set")
		}
	}
}

var duckSize = regexp.MustCompile(`^\s*\d+(\.\d+)?\s*([KMGT]i?B|B|bytes)?\s*$`)

func (cfg *Config) validateStorage(c *checker) {
	raw := cfg.Storage.URL
	if raw == "" {
		c.add("storage.url", "must not be empty (a folder, file:///path or s3://bucket/prefix)")
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		c.add("storage.url", "invalid URL %q: %v", raw, err)
		return
	}
	switch u.Scheme {
	case "", "file":
	case "s3":
		if u.Host == "" {
			c.add("storage.url", "s3 URL %q has no bucket (want s3://bucket/prefix)", raw)
		}
		if t := cfg.Storage.S3.MultipartThreshold; t < 5<<20 {
			c.add("storage.s3.multipart_threshold", "must be at least 5MiB (the S3 minimum part size), got %s", t)
		}
		s3 := cfg.Storage.S3
		if (s3.AccessKeyID == "") != (s3.SecretAccessKey == "") {
			c.add("storage.s3.access_key_id", "set both access_key_id and secret_access_key, or neither (default AWS credential chain)")
		}
		if s3.Endpoint != "" {
			if e, err := url.Parse(s3.Endpoint); err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				c.add("storage.s3.endpoint", "invalid endpoint %q: want http(s)://host:port", s3.Endpoint)
			}
		}
	default:
		c.add("storage.url", "unsupported scheme %q (want a folder, file:// or s3://)", u.Scheme)
	}
}

func (cfg *Config) validateMeta(c *checker) {
	raw := cfg.Meta.URL
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		c.add("meta.url", "invalid URL %q: want sqlite://path/to/file.db or postgres://host/db", raw)
		return
	}
	switch u.Scheme {
	case "sqlite":
		if strings.TrimPrefix(raw, "sqlite://") == "" {
			c.add("meta.url", "sqlite URL has no file path (want sqlite://path/to/medallion.db)")
		}
	case "postgres", "postgresql":
		if u.Host == "" {
			c.add("meta.url", "postgres URL %q has no host", redact(u))
		}
	default:
		c.add("meta.url", "unsupported scheme %q (want sqlite or postgres)", u.Scheme)
	}
}

// redact hides a password in a URL that goes into an error message.
func redact(u *url.URL) string { return u.Redacted() }

func (cfg *Config) validateKafka(c *checker) {
	k := cfg.Kafka
	for i, b := range k.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			c.add(fmt.Sprintf("kafka.brokers[%d]", i), "invalid broker address %q: want host:port", b)
		}
	}
	if k.GroupID == "" {
		c.add("kafka.group_id", "must not be empty")
	}
	if k.SessionTimeout < 100*time.Millisecond {
		c.add("kafka.session_timeout", "must be at least 100ms, got %s", k.SessionTimeout)
	}
	c.oneOf("kafka.sasl.mechanism", k.SASL.Mechanism, "", "plain", "scram-sha-256", "scram-sha-512")
	if k.SASL.Mechanism != "" && k.SASL.Username == "" {
		c.add("kafka.sasl.username", "is required with sasl.mechanism %q", k.SASL.Mechanism)
	}
	if (k.TLS.CertFile == "") != (k.TLS.KeyFile == "") {
		c.add("kafka.tls.cert_file", "set both cert_file and key_file, or neither")
	}
}

var identifier = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func (d *Domain) validate() []problem {
	var c checker
	if !identifier.MatchString(d.Name) {
		c.add("name", "invalid domain name %q: use lower-case letters, digits and _", d.Name)
	}
	if len(d.Topics) == 0 {
		c.add("topics", "must list at least one Kafka topic")
	}
	for i, t := range d.Topics {
		if t == "" || strings.ContainsAny(t, "/+ ") {
			c.add(fmt.Sprintf("topics[%d]", i), "invalid topic name %q", t)
		}
	}
	if !identifier.MatchString(d.PartitionKey) {
		c.add("partition_key", "must be a column name like event_date, got %q", d.PartitionKey)
	}
	if d.TimestampField == "" {
		c.add("timestamp_field", "must name the JSON field that holds the event time")
	}
	if d.TimestampBounds.Min != "" {
		if _, err := ParseTimeBound(d.TimestampBounds.Min); err != nil {
			c.add("timestamp_bounds.min", "%v", err)
		}
	}
	if d.TimestampBounds.MaxFuture < 0 {
		c.add("timestamp_bounds.max_future", "must not be negative")
	}
	if len(d.PrimaryKey) == 0 {
		c.add("primary_key", "must list at least one field")
	}
	c.oneOf("dedup", d.Dedup, "latest", "none")
	if d.MaxRetries != nil && *d.MaxRetries < 0 {
		c.add("max_retries", "must not be negative, got %d", *d.MaxRetries)
	}
	if d.SLA < 0 {
		c.add("sla", "must not be negative")
	}
	tables := map[string]bool{}
	for i, g := range d.Gold {
		key := fmt.Sprintf("gold[%d]", i)
		if !identifier.MatchString(g.Table) {
			c.add(key+".table", "invalid table name %q", g.Table)
		} else if tables[g.Table] {
			c.add(key+".table", "table %q is listed twice", g.Table)
		}
		tables[g.Table] = true
		if len(g.MergeKeys) == 0 {
			c.add(key+".merge_keys", "must list at least one column")
		}
		c.oneOf(key+".mode", g.Mode, "partition", "current")
		switch g.Mode {
		case "partition":
			if g.VersionColumn != "" {
				c.add(key+".version_column", "only applies to mode current")
			}
			if !slices.Contains(g.MergeKeys, g.PartitionColumn) {
				c.add(key+".merge_keys", "must include the partition column %q", g.PartitionColumn)
			}
		case "current":
			if g.PartitionColumn != "" {
				c.add(key+".partition_column", "only applies to mode partition (current-state tables are not partitioned)")
			}
		}
	}
	return c.ps
}

// ParseTimeBound parses an RFC 3339 timestamp or a YYYY-MM-DD date.
func ParseTimeBound(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339 or YYYY-MM-DD", s)
}

func (cfg *Config) validateLake(c *checker) {
	l := cfg.Lake
	if l.SnapshotRetention < 0 {
		c.add("lake.snapshot_retention", "must not be negative, got %s", l.SnapshotRetention)
	}
	if l.OrphanAge < 0 {
		c.add("lake.orphan_age", "must not be negative, got %s", l.OrphanAge)
	}
	c.positive("lake.min_snapshots", int64(l.MinSnapshots))
	if r := cfg.Bronze.Retention; r < 0 || (r > 0 && r < Duration(Day)) {
		c.add("bronze.retention", "must be 0 (keep bronze) or at least 1d, got %s", r)
	}
	if r := cfg.Bronze.Listing.Recent; r < Duration(Day) || r%Duration(Day) != 0 {
		c.add("bronze.listing.recent", "must be whole days, at least 1d, got %s", r)
	}
	if f := cfg.Bronze.Listing.FullEvery; f < 0 {
		c.add("bronze.listing.full_every", "must not be negative, got %s", f)
	}
	c.positive("lake.compact_target_size", int64(l.CompactTargetSize))
}

package config

import "time"

// Domain is one domain.yaml (domains/<name>/, or the user's
// config/domains/<name>.yaml): how a domain's topics are partitioned, keyed
// and aggregated. The SQL itself lives in the domain's Go package.
type Domain struct {
	// Name must match a registered domain package.
	Name string `yaml:"name"`
	// Topics are the Kafka topics whose messages belong to this domain.
	Topics []string `yaml:"topics"`
	// PartitionKey names the date partition column, e.g. event_date.
	PartitionKey string `yaml:"partition_key"`
	// TimestampField is the JSON field (RFC 3339) whose UTC date is the
	// partition date.
	TimestampField string `yaml:"timestamp_field"`
	// TimestampBounds rejects timestamps that cannot be right; such
	// messages go to the dead-letter topic.
	TimestampBounds Bounds `yaml:"timestamp_bounds"`
	// PrimaryKey identifies one record in silver.
	PrimaryKey []string `yaml:"primary_key"`
	// Dedup is "latest" (keep the latest version per primary key, ordered
	// by OrderBy then Kafka timestamp and offset) or "none".
	Dedup string `yaml:"dedup"`
	// OrderBy is the field that orders versions of one key, e.g. updated_at.
	// Empty means arrival order (Kafka timestamp, then offset).
	OrderBy string `yaml:"order_by"`
	// Gold lists the domain's gold tables.
	Gold []GoldTable `yaml:"gold"`
	// SLA is how long after the end of a day its partition should be DONE.
	SLA time.Duration `yaml:"sla"`
	// MaxRetries overrides pipeline.max_retries for this domain.
	MaxRetries *int `yaml:"max_retries"`

	// File is the YAML file this domain was loaded from.
	File string `yaml:"-"`
}

// Bounds limits plausible event timestamps.
type Bounds struct {
	// Min is the earliest accepted timestamp (RFC 3339 or YYYY-MM-DD).
	Min string `yaml:"min"`
	// MaxFuture is how far past the current time a timestamp may lie.
	MaxFuture time.Duration `yaml:"max_future"`
}

// MinTime is Min as a time; zero when Min is empty.
func (b Bounds) MinTime() (time.Time, error) {
	if b.Min == "" {
		return time.Time{}, nil
	}
	return ParseTimeBound(b.Min)
}

// GoldTable is one gold table of a domain.
type GoldTable struct {
	// Table is the table name inside the gold namespace.
	Table string `yaml:"table"`
	// MergeKeys identify a row for the MERGE.
	MergeKeys []string `yaml:"merge_keys"`
	// Mode is "partition" (the table is partitioned by a date column; each
	// run replaces the partitions its rows touch, deleting rows the source no
	// longer produces) or "current" (a current-state table: rows are inserted
	// or updated, never deleted by an old partition).
	Mode string `yaml:"mode"`
	// PartitionColumn is the DATE column of a partition-mode table; the
	// domain's partition_key by default (signups_daily uses signup_date).
	PartitionColumn string `yaml:"partition_column"`
	// VersionColumn, for a current-mode table, is the column an incoming
	// row must be newer in to replace the stored one (e.g. updated_at), so
	// reprocessing an old partition never regresses the table.
	VersionColumn string `yaml:"version_column"`
	// Export mirrors the table into export.postgres after every commit.
	Export bool `yaml:"export"`
}

// RetryLimit is the domain's max_retries, or the pipeline default.
func (d Domain) RetryLimit(p Pipeline) int {
	if d.MaxRetries != nil {
		return *d.MaxRetries
	}
	return p.MaxRetries
}

// Domain returns the named domain's configuration.
func (c *Config) Domain(name string) (Domain, bool) {
	for _, d := range c.Domains {
		if d.Name == name {
			return d, true
		}
	}
	return Domain{}, false
}

func domainDefaults() Domain {
	return Domain{
		Dedup:           "latest",
		SLA:             6 * time.Hour,
		TimestampBounds: Bounds{Min: "2000-01-01", MaxFuture: 24 * time.Hour},
	}
}

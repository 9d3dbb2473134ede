// Package medtype is Medallion's shared vocabulary: partition keys, dates,
// layer names and the partition state type. It imports nothing else from the
// project, so every other package can use it without import cycles (the same
// role rivertype plays in river).
package medtype

import (
	"database/sql/driver"
	"fmt"
	"time"
)

// PartitionState is the state of one (domain, partition_date) partition in
// the state machine. The allowed transitions live in package meta.
type PartitionState string

const (
	// StateUndiscovered is a partition with bronze data that no run has seen
	// yet. It is never stored: a partition without a row is undiscovered.
	StateUndiscovered PartitionState = "UNDISCOVERED"
	// StatePending is a discovered partition waiting for its first run.
	StatePending PartitionState = "PENDING"
	// StateInFlight is a partition leased by a worker and being processed.
	StateInFlight PartitionState = "IN_FLIGHT"
	// StateDone is a partition whose silver and gold are committed for the
	// file list recorded in file_hash.
	StateDone PartitionState = "DONE"
	// StateFailed is a partition whose last attempt failed (or whose worker's
	// lease expired). The next run moves it to RETRYING or DEAD.
	StateFailed PartitionState = "FAILED"
	// StateRetrying is a failed partition queued for another attempt.
	StateRetrying PartitionState = "RETRYING"
	// StateDead is a partition that failed max_retries times. It needs a
	// person: `medallion backfill` or `medallion reset`.
	StateDead PartitionState = "DEAD"
	// StateLate is a DONE partition whose bronze file list changed.
	StateLate PartitionState = "LATE"
	// StateReprocessing is a LATE partition queued for reprocessing.
	StateReprocessing PartitionState = "REPROCESSING"
	// StateArchived is how status reports a DONE partition whose bronze
	// files bronze.retention deleted. It is not stored as a state (the row
	// stays DONE, with archived_at set) and has no transitions: the
	// partition can never be processed again.
	StateArchived PartitionState = "ARCHIVED"
)

// PartitionStates lists every state, in lifecycle order.
func PartitionStates() []PartitionState {
	return []PartitionState{
		StateUndiscovered, StatePending, StateInFlight, StateDone,
		StateFailed, StateRetrying, StateDead, StateLate, StateReprocessing,
	}
}

// Valid reports whether s is one of the nine states.
func (s PartitionState) Valid() bool {
	for _, v := range PartitionStates() {
		if s == v {
			return true
		}
	}
	return false
}

// Layer names a layer of the lakehouse.
type Layer string

const (
	// LayerBronze holds raw Parquet exactly as it arrived from Kafka.
	LayerBronze Layer = "bronze"
	// LayerSilver holds typed, deduplicated records.
	LayerSilver Layer = "silver"
	// LayerGold holds business aggregates.
	LayerGold Layer = "gold"
	// LayerQuarantine holds rows that failed silver validation.
	LayerQuarantine Layer = "quarantine"
)

// DateLayout is the layout of a partition date, in paths and in the stores.
const DateLayout = "2006-01-02"

// Date is a calendar date in UTC, the unit of partitioning. The zero value is
// not a valid date.
type Date struct{ t time.Time }

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(DateLayout, s)
	if err != nil {
		return Date{}, fmt.Errorf("invalid date %q: want YYYY-MM-DD", s)
	}
	return Date{t}, nil
}

// MustDate is ParseDate for constants in tests and examples; it panics on a
// malformed date.
func MustDate(s string) Date {
	d, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

// DateOf is the UTC calendar date of t.
func DateOf(t time.Time) Date {
	y, m, d := t.UTC().Date()
	return Date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// IsZero reports whether d is the zero Date.
func (d Date) IsZero() bool { return d.t.IsZero() }

// Time is midnight UTC of d.
func (d Date) Time() time.Time { return d.t }

// AddDays returns d moved by n days.
func (d Date) AddDays(n int) Date { return Date{d.t.AddDate(0, 0, n)} }

// Before reports whether d is before o.
func (d Date) Before(o Date) bool { return d.t.Before(o.t) }

// String formats d as YYYY-MM-DD.
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return d.t.Format(DateLayout)
}

// MarshalText implements encoding.TextMarshaler (JSON, YAML).
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Date) UnmarshalText(b []byte) error {
	v, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Value stores a Date as text YYYY-MM-DD; PostgreSQL casts it to DATE.
func (d Date) Value() (driver.Value, error) { return d.String(), nil }

// Scan reads a Date from a DATE (time.Time) or text column.
func (d *Date) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*d = DateOf(v)
		return nil
	case string:
		return d.UnmarshalText([]byte(v))
	case []byte:
		return d.UnmarshalText(v)
	default:
		return fmt.Errorf("scan date: unsupported type %T", src)
	}
}

// PartitionKey identifies one partition: a domain and a partition date.
type PartitionKey struct {
	Domain string `json:"domain"`
	Date   Date   `json:"partition_date"`
}

// String formats the key as domain/YYYY-MM-DD.
func (k PartitionKey) String() string { return k.Domain + "/" + k.Date.String() }

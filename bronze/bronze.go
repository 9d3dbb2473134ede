// Package bronze is the bronze contract: the object key scheme, the envelope
// schema, the Parquet writer, partition discovery and the file-list hash
// that late-data detection compares.
//
// A bronze file holds raw Kafka messages of one topic partition and one
// partition date:
//
//	bronze/<domain>/<partition_key>=YYYY-MM-DD/<topic>+<kafka_partition>+<start_offset %020d>.parquet
//
// The key is deterministic from the offsets, so a replay after a crash
// rewrites the same object instead of adding a duplicate. Bronze never
// interprets the payload beyond the timestamp it partitions by.
package bronze

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/medallionlake/medallion/medtype"
)

// Root is the key prefix of all bronze objects.
const Root = "bronze"

// Object metadata written with every bronze file.
const (
	MetaStartOffset = "start-offset"
	MetaEndOffset   = "end-offset"
	MetaRecordCount = "record-count"
)

// File identifies one bronze file.
type File struct {
	Domain       string
	PartitionKey string // e.g. event_date
	Date         medtype.Date
	Topic        string
	Partition    int32
	StartOffset  int64
}

// Key is the object key of the file.
func (f File) Key() string {
	return fmt.Sprintf("%s%s+%d+%020d.parquet", PartitionPrefix(f.Domain, f.PartitionKey, f.Date), f.Topic, f.Partition, f.StartOffset)
}

// DomainPrefix is the key prefix of all of a domain's bronze files.
func DomainPrefix(domain string) string { return Root + "/" + domain + "/" }

// PartitionPrefix is the key prefix of one partition's files.
func PartitionPrefix(domain, partitionKey string, date medtype.Date) string {
	return DomainPrefix(domain) + partitionKey + "=" + date.String() + "/"
}

// ErrNotBronze means a key under bronze/ does not follow the scheme (a stray
// file). Discovery skips such keys and reports them; it never guesses.
var ErrNotBronze = errors.New("not a bronze file key")

// ParseKey parses a bronze object key.
func ParseKey(key string) (File, error) {
	bad := func(why string) (File, error) {
		return File{}, fmt.Errorf("%w: %s: %s", ErrNotBronze, key, why)
	}
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0] != Root {
		return bad("want bronze/<domain>/<key>=<date>/<file>.parquet")
	}
	f := File{Domain: parts[1]}
	pk, date, ok := strings.Cut(parts[2], "=")
	if !ok || pk == "" {
		return bad("folder is not <partition_key>=YYYY-MM-DD")
	}
	d, err := medtype.ParseDate(date)
	if err != nil {
		return bad(err.Error())
	}
	f.PartitionKey, f.Date = pk, d
	name, ok := strings.CutSuffix(parts[3], ".parquet")
	if !ok {
		return bad("not a .parquet file")
	}
	// Topic names may contain '+'? Kafka forbids it, so the last two '+'
	// separate partition and offset.
	i := strings.LastIndex(name, "+")
	j := strings.LastIndex(name[:max(i, 0)], "+")
	if i < 0 || j < 0 {
		return bad("file name is not <topic>+<partition>+<offset>")
	}
	f.Topic = name[:j]
	p, err := strconv.ParseInt(name[j+1:i], 10, 32)
	if err != nil || p < 0 {
		return bad("bad Kafka partition")
	}
	off, err := strconv.ParseInt(name[i+1:], 10, 64)
	if err != nil || off < 0 || len(name[i+1:]) != 20 {
		return bad("offset is not 20 digits")
	}
	f.Partition, f.StartOffset = int32(p), off
	return f, nil
}

// Record is one Kafka message in the bronze envelope. Column names start
// with an underscore except payload, the raw message.
type Record struct {
	Topic      string    `parquet:"_topic,dict"`
	Partition  int32     `parquet:"_partition"`
	Offset     int64     `parquet:"_offset"`
	Key        []byte    `parquet:"_key,optional"`
	KafkaTS    time.Time `parquet:"_kafka_ts,timestamp(millisecond)"`
	IngestedAt time.Time `parquet:"_ingested_at,timestamp(microsecond)"`
	// Headers is the message headers as a JSON object of strings.
	Headers string `parquet:"_headers"`
	// Payload is the raw message, UTF-8 JSON.
	Payload string `parquet:"payload"`
	// EventTime is the partitioning timestamp extracted from the payload.
	EventTime time.Time `parquet:"_event_ts,timestamp(microsecond)"`
}

package bronze_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/filesystem"
)

func TestKeyRoundTrip(t *testing.T) {
	f := bronze.File{Domain: "orders", PartitionKey: "order_date", Date: medtype.MustDate("2024-01-15"),
		Topic: "raw-orders", Partition: 3, StartOffset: 4200}
	want := "bronze/orders/order_date=2024-01-15/raw-orders+3+00000000000000004200.parquet"
	if f.Key() != want {
		t.Fatalf("key = %s, want %s", f.Key(), want)
	}
	got, err := bronze.ParseKey(want)
	if err != nil || got != f {
		t.Fatalf("parse = %+v, %v", got, err)
	}
	for _, bad := range []string{
		"bronze/orders/order_date=2024-01-15/raw-orders+3+4200.parquet",                 // offset not padded
		"bronze/orders/order_date=2024-13-15/raw-orders+3+00000000000000004200.parquet", // bad date
		"bronze/orders/2024-01-15/raw-orders+3+00000000000000004200.parquet",            // no key=
		"bronze/orders/order_date=2024-01-15/raw-orders+00000000000000004200.parquet",   // no partition
		"bronze/orders/order_date=2024-01-15/notes.txt",
		"silver/orders/order_date=2024-01-15/raw-orders+3+00000000000000004200.parquet",
	} {
		if _, err := bronze.ParseKey(bad); !errors.Is(err, bronze.ErrNotBronze) {
			t.Errorf("ParseKey(%q) = %v, want ErrNotBronze", bad, err)
		}
	}
}

func records(topic string, partition int32, from, n int, day string) []bronze.Record {
	ts, _ := time.Parse(time.RFC3339, day+"T10:00:00Z")
	var out []bronze.Record
	for i := 0; i < n; i++ {
		off := int64(from + i)
		out = append(out, bronze.Record{
			Topic: topic, Partition: partition, Offset: off, Key: []byte(fmt.Sprintf("k%d", off)),
			KafkaTS: ts.Add(time.Duration(i) * time.Second), IngestedAt: ts.Add(time.Hour),
			Headers: `{"trace":"x"}`, Payload: fmt.Sprintf(`{"id":%d,"ts":"%s"}`, off, ts.Format(time.RFC3339)),
			EventTime: ts.Add(time.Duration(i) * time.Second),
		})
	}
	return out
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := records("raw-events", 1, 100, 250, "2024-01-15")
	in[3].Key = nil // keys are optional
	var buf bytes.Buffer
	if err := bronze.Encode(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := bronze.Decode(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d records, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].Offset != in[i].Offset || out[i].Payload != in[i].Payload || !bytes.Equal(out[i].Key, in[i].Key) ||
			!out[i].KafkaTS.Equal(in[i].KafkaTS) || !out[i].EventTime.Equal(in[i].EventTime) || out[i].Headers != in[i].Headers {
			t.Fatalf("record %d: got %+v want %+v", i, out[i], in[i])
		}
	}
	if err := bronze.Encode(&buf, nil); err == nil {
		t.Fatal("encoding zero records succeeded")
	}
}

// One Encoder writes file after file; each holds only its own records and
// its own offsets in its key-value metadata.
func TestEncoderReuse(t *testing.T) {
	var e bronze.Encoder
	for i, in := range [][]bronze.Record{
		records("raw-events", 2, 1000, 300, "2024-01-15"),
		records("raw-events", 2, 1300, 7, "2024-01-15"),
		records("raw-events", 2, 1307, 1, "2024-01-16"),
	} {
		var buf bytes.Buffer
		if err := e.Encode(&buf, in); err != nil {
			t.Fatal(err)
		}
		out, err := bronze.Decode(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != len(in) || out[0].Offset != in[0].Offset || out[len(out)-1].Payload != in[len(in)-1].Payload {
			t.Fatalf("file %d: decoded %d records starting at %d, want %d from %d", i, len(out), out[0].Offset, len(in), in[0].Offset)
		}
		f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range bronze.Metadata(in) {
			if got, _ := f.Lookup(k); got != want {
				t.Errorf("file %d: metadata %s = %q, want %q", i, k, got, want)
			}
		}
	}
}

func TestPutIsIdempotentAndCarriesMetadata(t *testing.T) {
	ctx := context.Background()
	b, err := filesystem.New(filesystem.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	recs := records("raw-orders", 0, 42, 10, "2024-01-15")
	f := bronze.File{Domain: "orders", PartitionKey: "order_date", Date: medtype.MustDate("2024-01-15"), Topic: "raw-orders", StartOffset: 42}
	for i := 0; i < 2; i++ { // a replay writes the same object again
		if err := bronze.Put(ctx, b, f, recs); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := storage.ListAll(ctx, b, "")
	if err != nil || len(objs) != 1 || objs[0].Key != f.Key() {
		t.Fatalf("after replay: %v %v", objs, err)
	}
	st, err := b.Stat(ctx, f.Key())
	if err != nil {
		t.Fatal(err)
	}
	if st.Metadata["start-offset"] != "42" || st.Metadata["end-offset"] != "51" || st.Metadata["record-count"] != "10" {
		t.Fatalf("metadata = %v", st.Metadata)
	}
}

func TestDiscoverGroupsAndHashes(t *testing.T) {
	ctx := context.Background()
	b, err := filesystem.New(filesystem.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	put := func(day string, partition int32, offset int) bronze.File {
		f := bronze.File{Domain: "events", PartitionKey: "event_date", Date: medtype.MustDate(day), Topic: "raw-events", Partition: partition, StartOffset: int64(offset)}
		if err := bronze.Put(ctx, b, f, records("raw-events", partition, offset, 5, day)); err != nil {
			t.Fatal(err)
		}
		return f
	}
	put("2024-01-16", 0, 0)
	put("2024-01-15", 1, 0)
	put("2024-01-15", 0, 10)
	if err := b.Put(ctx, "bronze/events/event_date=2024-01-15/README.txt", strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "bronze/eventsextra/event_date=2024-01-15/raw-events+0+00000000000000000000.parquet", strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	d, err := bronze.Discover(ctx, b, "events", "event_date", medtype.MustDate("2024-01-16"))
	if err != nil || len(d.Partitions) != 1 || d.Partitions[0].Date.String() != "2024-01-16" || len(d.Partitions[0].Files) != 1 || len(d.Skipped) != 0 {
		t.Fatalf("since 2024-01-16: %+v %v", d, err)
	}
	d, err = bronze.Discover(ctx, b, "events", "event_date", medtype.Date{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Partitions) != 2 || d.Partitions[0].Date.String() != "2024-01-15" || len(d.Partitions[0].Files) != 2 || len(d.Partitions[1].Files) != 1 {
		t.Fatalf("partitions = %+v", d.Partitions)
	}
	if !slices.Equal(d.Skipped, []string{"bronze/events/event_date=2024-01-15/README.txt"}) {
		t.Fatalf("skipped = %v", d.Skipped)
	}
	h1 := d.Partitions[0].Hash()
	// Same files: same hash, whatever the listing order.
	rev := slices.Clone(d.Partitions[0].Files)
	slices.Reverse(rev)
	if bronze.FileListHash(rev) != h1 {
		t.Fatal("hash depends on order")
	}
	// A new file changes the hash.
	put("2024-01-15", 2, 0)
	p, err := bronze.ListPartition(ctx, b, "events", "event_date", medtype.MustDate("2024-01-15"))
	if err != nil || len(p.Files) != 3 || p.Hash() == h1 {
		t.Fatalf("after a late file: %d files, hash changed %v, %v", len(p.Files), p.Hash() != h1, err)
	}
	// Rewriting an object under the same key with other content changes it too.
	h2 := p.Hash()
	f := bronze.File{Domain: "events", PartitionKey: "event_date", Date: medtype.MustDate("2024-01-15"), Topic: "raw-events", Partition: 2}
	if err := bronze.Put(ctx, b, f, records("raw-events", 2, 0, 7, "2024-01-15")); err != nil {
		t.Fatal(err)
	}
	p, _ = bronze.ListPartition(ctx, b, "events", "event_date", medtype.MustDate("2024-01-15"))
	if p.Hash() == h2 {
		t.Fatal("rewriting a file under the same key kept the hash")
	}
}

func TestEventTime(t *testing.T) {
	now := time.Date(2024, 1, 20, 0, 0, 0, 0, time.UTC)
	bounds := bronze.Bounds{Min: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), MaxFuture: 24 * time.Hour}
	ok := map[string]string{
		`{"event_timestamp":"2024-01-15T10:22:33.123Z","x":1}`: "2024-01-15T10:22:33.123Z",
		`{"event_timestamp":"2024-01-15T10:22:33Z"}`:           "2024-01-15T10:22:33Z",
		`{"event_timestamp":"2024-01-15T23:30:00-02:00"}`:      "2024-01-16T01:30:00Z", // UTC date decides
	}
	for payload, want := range ok {
		got, err := bronze.EventTime([]byte(payload), "event_timestamp", bounds, now)
		if err != nil || got.Format(time.RFC3339Nano) != want {
			t.Errorf("EventTime(%s) = %v, %v; want %s", payload, got, err, want)
		}
	}
	bad := map[string]error{
		`not json`: bronze.ErrNotJSON,
		`[1,2]`:    bronze.ErrNotJSON,
		`null`:     bronze.ErrNotJSON,
		"{\"event_timestamp\":\"2024-01-15T10:22:33Z\",\"city\":\"M\xfcnchen\"}": bronze.ErrNotJSON, // Latin-1, not UTF-8
		`{"other":"2024-01-15T10:22:33Z"}`:                                       bronze.ErrNoTimestamp,
		`{"event_timestamp":null}`:                                               bronze.ErrNoTimestamp,
		`{"event_timestamp":1705314153}`:                                         bronze.ErrBadTimestamp,
		`{"event_timestamp":"yesterday"}`:                                        bronze.ErrBadTimestamp,
		`{"event_timestamp":"1999-12-31T23:59:59Z"}`:                             bronze.ErrTimestampOutside,
		`{"event_timestamp":"2024-01-21T00:00:01Z"}`:                             bronze.ErrTimestampOutside,
	}
	for payload, want := range bad {
		if _, err := bronze.EventTime([]byte(payload), "event_timestamp", bounds, now); !errors.Is(err, want) {
			t.Errorf("EventTime(%s) = %v, want %v", payload, err, want)
		}
	}
	// A field name is literal, never a path.
	dotted := `{"meta":{"ts":"2024-01-15T00:00:00Z"},"meta.ts":"2024-01-16T00:00:00Z"}`
	if got, err := bronze.EventTime([]byte(dotted), "meta.ts", bounds, now); err != nil || got.Day() != 16 {
		t.Errorf("EventTime(meta.ts) = %v, %v; want the top-level field of 2024-01-16", got, err)
	}
	if _, err := bronze.EventTime([]byte(`{"meta":{"ts":"2024-01-15T00:00:00Z"}}`), "meta.ts", bounds, now); !errors.Is(err, bronze.ErrNoTimestamp) {
		t.Errorf("EventTime(meta.ts) of a nested field = %v, want %v", err, bronze.ErrNoTimestamp)
	}
}

// BenchmarkEncoder writes files of 1,000 sink-benchmark-like messages with
// one reused Encoder, as the sink does.
func BenchmarkEncoder(b *testing.B) {
	now := time.Date(2024, 1, 15, 3, 0, 0, 0, time.UTC)
	recs := make([]bronze.Record, 1000)
	size := 0
	for i := range recs {
		p := fmt.Sprintf(`{"event_id":"e-%012d","event_type":"view_item","event_timestamp":"2024-01-15T03:25:45.000Z","user_id":"u-%d","session_id":"s-%08d","device":"ios","city":"Austin","restaurant_id":"r-5","item_id":"m-45","order_id":null,"amount":null,"properties":{"note":"%s"}}`, i, i%50_000, i/20, strings.Repeat("x", 40))
		recs[i] = bronze.Record{Topic: "raw-events", Partition: 3, Offset: int64(i), Key: []byte(fmt.Sprintf("e-%d", i)), KafkaTS: now, IngestedAt: now, Headers: "{}", Payload: p, EventTime: now}
		size += len(p)
	}
	var e bronze.Encoder
	var buf bytes.Buffer
	b.SetBytes(int64(size))
	for b.Loop() {
		buf.Reset()
		if err := e.Encode(&buf, recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "file-bytes")
}

// TestCreateNeverReplaces: a replay of the same offsets, larger or smaller,
// never replaces a file; it writes exactly the offsets no file holds, under
// their own keys, and the offset range comes from the footer where the
// object metadata was lost.
func TestCreateNeverReplaces(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	b, err := filesystem.New(filesystem.Config{Root: root, Sidecar: true})
	if err != nil {
		t.Fatal(err)
	}
	f := bronze.File{Domain: "orders", PartitionKey: "order_date", Date: medtype.MustDate("2024-01-15"), Topic: "raw-orders", Partition: 1}
	all := records("raw-orders", 1, 100, 30, "2024-01-15")
	var e bronze.Encoder
	steps := []struct {
		recs []bronze.Record
		want bronze.Created
	}{
		{all[:10], bronze.Created{Files: 1, Written: 10, Through: -1}},                      // 100-109
		{all[:20], bronze.Created{Files: 1, Written: 10, Held: 10, Taken: 1, Through: 109}}, // 110-119 under 110
		{all[:5], bronze.Created{Held: 5, Taken: 1, Through: 109}},                          // a smaller, stale replay
		{all, bronze.Created{Files: 1, Written: 10, Held: 20, Taken: 2, Through: 119}},      // 120-129 under 120
		{all[20:], bronze.Created{Held: 10, Taken: 1, Through: 129}},                        // all there
	}
	for i, s := range steps {
		got, err := e.Create(ctx, b, f, s.recs)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got != s.want {
			t.Fatalf("step %d: created %+v, want %+v", i, got, s.want)
		}
		if i == 0 { // lose the first file's metadata: the footer says the same
			first := f
			first.StartOffset = 100
			key := first.Key()
			if err := os.Remove(filepath.Join(root, filepath.Dir(key), "."+filepath.Base(key)+".meta.json")); err != nil {
				t.Fatal(err)
			}
			if md := statMetadata(t, b, key); len(md) != 0 {
				t.Fatalf("metadata still there: %v", md)
			}
		}
	}
	objs, err := storage.ListAll(ctx, b, "bronze/")
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	for _, o := range objs {
		data, err := storage.ReadAll(ctx, b, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := bronze.Decode(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			offsets = append(offsets, r.Offset)
		}
	}
	want := make([]int64, 30)
	for i := range want {
		want[i] = int64(100 + i)
	}
	if !slices.Equal(offsets, want) {
		t.Fatalf("bronze holds offsets %v, want each of 100-129 once", offsets)
	}
}

func statMetadata(t *testing.T, b storage.Bucket, key string) map[string]string {
	t.Helper()
	o, err := b.Stat(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return o.Metadata
}

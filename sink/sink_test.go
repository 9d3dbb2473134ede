package sink_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/config"
	_ "github.com/medallionlake/medallion/domains/all" // the built-in domains
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/sink"
	"github.com/medallionlake/medallion/storage"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func cluster(t *testing.T, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics...), kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	must(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func domainsFor(t *testing.T, names ...string) []config.Domain {
	all, err := config.BuiltinDomains()
	must(t, err)
	var out []config.Domain
	for _, d := range all {
		for _, n := range names {
			if d.Name == n {
				out = append(out, d)
			}
		}
	}
	return out
}

// produce writes the messages, each to its generated partition.
func produce(t *testing.T, brokers []string, msgs []generate.Message) {
	t.Helper()
	produceVia(t, brokers, nil, msgs)
}

// produceVia produces through a transport (TLS, SASL); nil is plaintext.
func produceVia(t *testing.T, brokers []string, tr *kafka.Transport, msgs []generate.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: kafka.BalancerFunc(func(m kafka.Message, parts ...int) int {
		p, _ := strconv.Atoi(string(m.Headers[0].Value))
		return p
	}), BatchSize: 1000, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	if tr != nil { // a nil *Transport in the interface would not be nil
		w.Transport = tr
	}
	defer w.Close()
	batch := make([]kafka.Message, 0, 1000)
	for _, m := range msgs {
		batch = append(batch, kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Time: m.Time,
			Headers: []kafka.Header{{Key: "p", Value: []byte(strconv.Itoa(int(m.Partition)))}}})
		if len(batch) == cap(batch) {
			must(t, w.WriteMessages(context.Background(), batch...))
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		must(t, w.WriteMessages(context.Background(), batch...))
	}
}

func options(brokers []string, b storage.Bucket, doms []config.Domain) sink.Options {
	c := config.Defaults().Sink
	c.FlushMessages = 2000
	return sink.Options{Brokers: brokers, GroupID: "medallion-test", Domains: doms, Sink: c, Bucket: b,
		SessionTimeout: time.Second, Log: testLog()}
}

// runToEnd runs a sink with --until-end to its end, within a minute.
func runToEnd(t *testing.T, o sink.Options) *sink.Sink {
	t.Helper()
	o.UntilEnd = true
	s, err := sink.New(o)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must(t, s.Run(ctx))
	if ctx.Err() != nil {
		t.Fatal("the --until-end run ended at the test's deadline")
	}
	return s
}

// testLog discards the sink's log, or, with MEDALLION_SINK_TEST_LOG=1,
// writes it to stderr at debug level (to follow a failing test).
func testLog() *slog.Logger {
	if os.Getenv("MEDALLION_SINK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// eachRecord calls fn for every record of every bronze file.
func eachRecord(t *testing.T, b storage.Bucket, fn func(f bronze.File, r bronze.Record)) {
	t.Helper()
	ctx := context.Background()
	objs, err := storage.ListAll(ctx, b, "bronze/")
	must(t, err)
	for _, o := range objs {
		data, err := storage.ReadAll(ctx, b, o.Key)
		must(t, err)
		recs, err := bronze.Decode(bytesReader(data), int64(len(data)))
		must(t, err)
		f, err := bronze.ParseKey(o.Key)
		must(t, err)
		for _, r := range recs {
			fn(f, r)
		}
	}
}

func recordKey(r bronze.Record) string {
	return fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
}

// bronzeCounts counts how often each topic/partition/offset is in bronze.
func bronzeCounts(t *testing.T, b storage.Bucket) map[string]int {
	t.Helper()
	out := map[string]int{}
	eachRecord(t, b, func(_ bronze.File, r bronze.Record) { out[recordKey(r)]++ })
	return out
}

// bronzeRows reads every bronze record back: topic/partition/offset ->
// payload. It fails on a record present twice or in the wrong date folder.
func bronzeRows(t *testing.T, b storage.Bucket) map[string]string {
	t.Helper()
	out := map[string]string{}
	eachRecord(t, b, func(f bronze.File, r bronze.Record) {
		k := recordKey(r)
		if _, dup := out[k]; dup {
			t.Fatalf("%s is in bronze twice", k)
		}
		if medtype.DateOf(r.EventTime) != f.Date {
			t.Fatalf("%s sits in %s but its event time is %s", k, f.Key(), r.EventTime)
		}
		out[k] = r.Payload
	})
	return out
}

// TestNoLossNoDuplicatesUntilEnd: 100k messages over two topics and six
// partitions, 0.1% unroutable. Every routable message is in bronze exactly
// once in its date partition, every other is in its DLQ with headers, and
// the committed offsets are the end offsets.
func TestNoLossNoDuplicatesUntilEnd(t *testing.T) {
	brokers := cluster(t, "raw-events", "raw-orders")
	msgs, err := generate.Generate(generate.Options{Seed: 1, Start: medtype.MustDate("2024-01-15"), Days: 2, EventsPerDay: 47_700,
		Unroutable: 0.001, Domains: []string{"events", "orders"}})
	must(t, err)
	if len(msgs) < 100_000 {
		t.Fatalf("only %d messages", len(msgs))
	}
	produce(t, brokers, msgs)
	b := localBronze(t)
	s, err := sink.New(func() sink.Options {
		o := options(brokers, b, domainsFor(t, "events", "orders"))
		o.UntilEnd = true
		return o
	}())
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	must(t, s.Run(ctx))

	offsets := generate.Offsets(msgs)
	want := map[string]string{}
	var dead []string
	for i, m := range msgs {
		k := fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, offsets[i])
		if m.Unroutable {
			dead = append(dead, k)
			continue
		}
		want[k] = string(m.Value)
	}
	got := bronzeRows(t, b)
	if len(got) != len(want) {
		t.Fatalf("bronze has %d messages, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: bronze payload %q, want %q", k, got[k], v)
		}
	}
	if n := s.Stats().DLQ.Load(); n != int64(len(dead)) || n == 0 {
		t.Fatalf("dead-lettered %d, want %d", n, len(dead))
	}
	// The DLQ holds exactly the unroutable messages, with their source.
	var gotDead []string
	for _, topic := range []string{"dlq-raw-events", "dlq-raw-orders"} {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: time.Second})
		for len(gotDead) < len(dead) {
			rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			m, err := r.ReadMessage(rctx)
			cancel()
			if err != nil {
				break
			}
			h := map[string]string{}
			for _, x := range m.Headers {
				h[x.Key] = string(x.Value)
			}
			if h["error"] == "" || h["source_topic"] != topic[len("dlq-"):] {
				t.Fatalf("dead letter headers: %v", h)
			}
			gotDead = append(gotDead, h["source_topic"]+"/"+h["source_partition"]+"/"+h["source_offset"])
		}
		r.Close()
	}
	sort.Strings(dead)
	sort.Strings(gotDead)
	if fmt.Sprint(dead) != fmt.Sprint(gotDead) {
		t.Fatalf("DLQ has %v, want %v", gotDead, dead)
	}
	// The metrics say the same.
	_, metrics := get(t, s, "/metrics")
	var written int
	for k := range want {
		if strings.HasPrefix(k, "raw-events/") {
			written++
		}
	}
	for _, line := range []string{
		fmt.Sprintf(`medallion_sink_messages_written_total{topic="raw-events"} %d`, written),
		fmt.Sprintf(`medallion_sink_messages_written_total{topic="raw-orders"} %d`, len(want)-written),
		`medallion_sink_lag_messages{partition="0",topic="raw-orders"} 0`,
		"medallion_sink_flush_duration_seconds_count",
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	// Committed offsets equal the end offsets.
	for _, topic := range []string{"raw-events", "raw-orders"} {
		if got, want := committed(t, brokers, topic), endsOf(msgs, topic); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s committed %v, want the end offsets %v", topic, got, want)
		}
	}
}

// TestUntilEndWithEmptyPartitions: a topic with nothing in it (end offset 0)
// must not keep --until-end waiting.
func TestUntilEndWithEmptyPartitions(t *testing.T) {
	brokers := cluster(t, "raw-events", "raw-orders")
	msgs := eventMessages(t, 300) // raw-orders stays empty
	produce(t, brokers, msgs)
	b := localBronze(t)
	o := options(brokers, b, domainsFor(t, "events", "orders"))
	o.UntilEnd = true
	s, err := sink.New(o)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(t, s.Run(ctx))
	if ctx.Err() != nil {
		t.Fatal("--until-end waited for the empty topic until the test's deadline")
	}
	if got := len(bronzeRows(t, b)); got != len(msgs) {
		t.Fatalf("bronze has %d messages, want %d", got, len(msgs))
	}
}

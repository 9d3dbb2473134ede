package sink_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/sink"
	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/filesystem"
)

// faulty wraps a bucket: Put fails while down is set, and afterPut runs
// after each successful Put (fault injection as a wrapper, not inside the
// provider).
type faulty struct {
	storage.Bucket
	down     atomic.Bool
	attempts atomic.Int64
	failed   chan struct{} // receives once per failed Put, if not full
	afterPut func()
	delay    time.Duration // before each Put
	fails    func(key string) bool
	before   func(ctx context.Context, key string) // runs before each write; may block
}

func (f *faulty) Put(ctx context.Context, key string, r io.Reader, md map[string]string) error {
	return f.write(ctx, key, func() error { return f.Bucket.Put(ctx, key, r, md) })
}

func (f *faulty) Create(ctx context.Context, key string, r io.Reader, md map[string]string) error {
	return f.write(ctx, key, func() error { return f.Bucket.Create(ctx, key, r, md) })
}

func (f *faulty) write(ctx context.Context, key string, put func() error) error {
	f.attempts.Add(1)
	if f.down.Load() || (f.fails != nil && f.fails(key)) {
		select {
		case f.failed <- struct{}{}:
		default:
		}
		return errors.New("injected storage outage: 503 Slow Down")
	}
	if f.before != nil {
		f.before(ctx, key)
	}
	time.Sleep(f.delay)
	if err := put(); err != nil {
		return err
	}
	if f.afterPut != nil {
		f.afterPut()
	}
	return nil
}

func committed(t *testing.T, brokers []string, topic string) map[int]int64 {
	t.Helper()
	return testenv.GroupCommitted(t, brokers, "medallion-test", topic, 3)
}

func endsOf(msgs []generate.Message, topic string) map[int]int64 {
	offsets := generate.Offsets(msgs)
	out := map[int]int64{0: -1, 1: -1, 2: -1}
	for i, m := range msgs {
		if m.Topic == topic {
			out[int(m.Partition)] = offsets[i] + 1
		}
	}
	return out
}

func eventMessages(t *testing.T, n int) []generate.Message {
	t.Helper()
	msgs, err := generate.Generate(generate.Options{Seed: 3, Start: medtype.MustDate("2024-01-15"), Days: 1, EventsPerDay: n, Domains: []string{"events"}})
	must(t, err)
	return msgs
}

// eventBacklog starts a kfake cluster with raw-events and produces n
// generated events to it.
func eventBacklog(t *testing.T, n int) ([]string, []generate.Message) {
	t.Helper()
	brokers := cluster(t, "raw-events")
	msgs := eventMessages(t, n)
	produce(t, brokers, msgs)
	return brokers, msgs
}

// localBronze is filesystem storage in a fresh temp folder.
func localBronze(t *testing.T) *filesystem.Bucket {
	t.Helper()
	b, err := filesystem.New(filesystem.Config{Root: t.TempDir()})
	must(t, err)
	return b
}

// holdAll runs a sink whose batches never flush by themselves until it
// has consumed n messages; sigterm cancels it, as SIGTERM does, and
// returns what Run returned.
func holdAll(t *testing.T, o sink.Options, n int) (sigterm func() error) {
	t.Helper()
	o.Sink.FlushMessages, o.Sink.FlushInterval = 1_000_000, time.Hour
	s, err := sink.New(o)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	must(t, s.Stats().WaitConsumed(wctx, int64(n)))
	return func() error { cancel(); return <-done }
}

// TestShutdownFlushesAndCommits: SIGTERM (a cancelled context) with partial
// buffers flushes everything and commits it.
func TestShutdownFlushesAndCommits(t *testing.T) {
	brokers, msgs := eventBacklog(t, 5000)
	b := localBronze(t)
	sigterm := holdAll(t, options(brokers, b, domainsFor(t, "events")), len(msgs))
	if n := len(bronzeRows(t, b)); n != 0 {
		t.Fatalf("%d messages were flushed before the shutdown", n)
	}
	must(t, sigterm())
	if got := len(bronzeRows(t, b)); got != len(msgs) {
		t.Fatalf("after shutdown bronze has %d messages, want %d", got, len(msgs))
	}
	if got, want := committed(t, brokers, "raw-events"), endsOf(msgs, "raw-events"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("committed %v, want %v", got, want)
	}
}

// TestStorageOutage: while storage fails the sink retries with backoff and
// commits nothing; when it recovers the sink carries on.
func TestStorageOutage(t *testing.T) {
	brokers, msgs := eventBacklog(t, 4000)
	fs := localBronze(t)
	b := &faulty{Bucket: fs, failed: make(chan struct{}, 1)}
	b.down.Store(true)
	o := options(brokers, b, domainsFor(t, "events"))
	o.Sink.FlushMessages = 1000
	o.UntilEnd = true
	s, err := sink.New(o)
	must(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	for i := 0; i < 3; i++ { // three failed attempts, then look
		<-b.failed
	}
	for p, off := range committed(t, brokers, "raw-events") {
		if off >= 0 {
			t.Fatalf("partition %d committed %d during the outage", p, off)
		}
	}
	if code, body := get(t, s, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "injected storage outage") {
		t.Fatalf("healthz during the outage: %d %q", code, body)
	}
	b.down.Store(false)
	must(t, <-done)
	if code, _ := get(t, s, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz after recovery: %d", code)
	}
	if got := len(bronzeRows(t, b)); got != len(msgs) {
		t.Fatalf("bronze has %d messages, want %d", got, len(msgs))
	}
	if got, want := committed(t, brokers, "raw-events"), endsOf(msgs, "raw-events"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("committed %v, want %v", got, want)
	}
}

// TestCrashBetweenPutAndCommit: a sink process dies right after its first
// bronze PUT, before committing. A new sink with another flush_messages
// replays from the last commit: nothing is lost, the crashed sink's files
// stay as they are (write-once), and the replay writes only the offsets
// they lack, so bronze holds every message exactly once.
func TestCrashBetweenPutAndCommit(t *testing.T) {
	if os.Getenv("MEDALLION_SINK_CHILD") != "" {
		crashingChild(t)
		return
	}
	brokers, msgs := eventBacklog(t, 6000)
	root := t.TempDir()

	child := exec.Command(os.Args[0], "-test.run=^TestCrashBetweenPutAndCommit$")
	child.Env = append(os.Environ(), "MEDALLION_SINK_CHILD=1", "MEDALLION_SINK_BROKERS="+strings.Join(brokers, ","), "MEDALLION_SINK_ROOT="+root)
	out, err := child.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("the child did not crash after its first PUT: %v\n%s", err, out)
	}
	fs, err := filesystem.New(filesystem.Config{Root: root})
	must(t, err)
	before, err := storage.ListAll(context.Background(), fs, "bronze/")
	must(t, err)
	// Partitions flush concurrently, so more than one PUT may finish before
	// the exit; none can commit, because every PUT exits before its batch's
	// commit.
	if len(before) == 0 {
		t.Fatal("the crashed sink left no file")
	}
	for p, off := range committed(t, brokers, "raw-events") {
		if off >= 0 {
			t.Fatalf("partition %d was committed at %d by the crashed sink", p, off)
		}
	}

	o := options(brokers, fs, domainsFor(t, "events"))
	o.Sink.FlushMessages = 2500 // the crashed sink's was 1000
	s := runToEnd(t, o)
	got := bronzeRows(t, fs) // fails on any message present twice
	if len(got) != len(msgs) {
		t.Fatalf("bronze has %d messages, want %d", len(got), len(msgs))
	}
	after, err := storage.ListAll(context.Background(), fs, "bronze/")
	must(t, err)
	for _, b := range before {
		i := slices.IndexFunc(after, func(o storage.Object) bool { return o.Key == b.Key })
		if i < 0 || !after[i].ModTime.Equal(b.ModTime) || after[i].Size != b.Size {
			t.Fatalf("the replay replaced %s, a file the crashed sink wrote (bronze is write-once)", b.Key)
		}
	}
	_, metrics := get(t, s, "/metrics")
	for _, m := range []string{"medallion_sink_bronze_keys_taken_total", "medallion_sink_messages_already_in_bronze_total"} {
		if !regexp.MustCompile(m + `\{topic="raw-events"\} [1-9]`).MatchString(metrics) {
			t.Errorf("the replay's /metrics has no %s:\n%s", m, grepLines(metrics, "medallion_sink_"))
		}
	}
	if got, want := committed(t, brokers, "raw-events"), endsOf(msgs, "raw-events"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("committed %v, want %v", got, want)
	}
}

// crashingChild runs in the child process: a sink whose process exits the
// moment its first PUT returns.
func crashingChild(t *testing.T) {
	fs, err := filesystem.New(filesystem.Config{Root: os.Getenv("MEDALLION_SINK_ROOT")})
	must(t, err)
	b := &faulty{Bucket: fs, afterPut: func() { os.Exit(3) }}
	o := options(strings.Split(os.Getenv("MEDALLION_SINK_BROKERS"), ","), b, domainsFor(t, "events"))
	o.Sink.FlushMessages = 1000
	o.UntilEnd = true
	s, err := sink.New(o)
	must(t, err)
	_ = s.Run(context.Background())
	t.Fatal("the child finished without crashing")
}

func get(t *testing.T, s *sink.Sink, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// TestPartialOutage: while one partition's files fail and the others'
// succeed, /healthz keeps answering 503: a success elsewhere does not hide
// the write still being retried.
func TestPartialOutage(t *testing.T) {
	brokers, msgs := eventBacklog(t, 4000)
	fs := localBronze(t)
	var p0down atomic.Bool
	p0down.Store(true)
	p0failed := make(chan struct{})
	var once sync.Once
	b := &faulty{Bucket: fs, fails: func(key string) bool {
		if strings.Contains(key, "/raw-events+0+") && p0down.Load() {
			once.Do(func() { close(p0failed) })
			return true
		}
		<-p0failed // the others write once partition 0 is failing
		return false
	}}
	o := options(brokers, b, domainsFor(t, "events"))
	o.Sink.FlushMessages = 500
	o.UntilEnd = true
	var (
		s     *sink.Sink
		mu    sync.Mutex
		codes []int
	)
	ends := endsOf(msgs, "raw-events")
	others := make(chan struct{}, 2)
	o.OnCommit = func(_ string, p int, off int64) {
		if p == 0 || !p0down.Load() {
			return
		}
		code, _ := get(t, s, "/healthz")
		mu.Lock()
		codes = append(codes, code)
		mu.Unlock()
		if off == ends[p] {
			others <- struct{}{}
		}
	}
	var err error
	s, err = sink.New(o)
	must(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	<-others
	<-others // partitions 1 and 2 are written to their end
	if code, body := get(t, s, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "raw-events+0+") {
		t.Fatalf("healthz while partition 0 fails: %d %q", code, body)
	}
	p0down.Store(false)
	must(t, <-done)
	mu.Lock()
	defer mu.Unlock()
	if len(codes) == 0 || slices.ContainsFunc(codes, func(c int) bool { return c != http.StatusServiceUnavailable }) {
		t.Fatalf("healthz after the other partitions' commits: %v, want 503 each time", codes)
	}
	if code, _ := get(t, s, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz after recovery: %d", code)
	}
	if got := len(bronzeRows(t, fs)); got != len(msgs) {
		t.Fatalf("bronze has %d messages, want %d", got, len(msgs))
	}
}

// TestReadAheadWhileWriting: with storage slower than Kafka, a batch that
// reaches flush_messages while the one before it is written reads on, up
// to ReadAhead times the limit, and is written as one file per date and
// committed once. Nothing is lost or written twice.
func TestReadAheadWhileWriting(t *testing.T) {
	brokers, msgs := eventBacklog(t, 6000)
	fs := localBronze(t)
	o := options(brokers, &faulty{Bucket: fs, delay: 30 * time.Millisecond}, domainsFor(t, "events"))
	o.Sink.FlushMessages = 100
	o.UntilEnd = true
	var mu sync.Mutex
	last := map[int]int64{}
	var steps []int64
	o.OnCommit = func(_ string, p int, off int64) {
		mu.Lock()
		defer mu.Unlock()
		steps = append(steps, off-max(last[p], 0))
		last[p] = off
	}
	s, err := sink.New(o)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must(t, s.Run(ctx))

	if got := bronzeRows(t, fs); len(got) != len(msgs) { // fails on a message present twice
		t.Fatalf("bronze has %d messages, want %d", len(got), len(msgs))
	}
	// A batch that read ahead is one larger file (the backlog is of one
	// date), never more than ReadAhead times flush_messages.
	perFile := map[string]int{}
	eachRecord(t, fs, func(f bronze.File, _ bronze.Record) { perFile[f.Key()]++ })
	largest := 0
	for _, n := range perFile {
		largest = max(largest, n)
	}
	if largest <= o.Sink.FlushMessages || largest > sink.ReadAhead*o.Sink.FlushMessages {
		t.Fatalf("largest file holds %d messages, want more than %d (read ahead) and at most %d", largest, o.Sink.FlushMessages, sink.ReadAhead*o.Sink.FlushMessages)
	}
	if m := slices.Max(steps); m < int64(largest) || m > int64(sink.ReadAhead*o.Sink.FlushMessages) {
		t.Fatalf("largest batch committed %d messages, want from %d (the largest file) to %d", m, largest, sink.ReadAhead*o.Sink.FlushMessages)
	}
	if got, want := committed(t, brokers, "raw-events"), endsOf(msgs, "raw-events"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("committed %v, want %v", got, want)
	}
}

// TestOffsetsDeletedBeforeTheSinkReadThem: records deleted (retention,
// DeleteRecords) past the group's committed offset before the sink read
// them are skipped by the reader; the sink counts and logs them instead
// of losing them silently.
func TestOffsetsDeletedBeforeTheSinkReadThem(t *testing.T) {
	brokers := cluster(t, "raw-events")
	msgs := eventMessages(t, 900)
	for i := range msgs {
		msgs[i].Partition = 0
	}
	produce(t, brokers, msgs[:300])
	b := localBronze(t)
	runToEnd(t, options(brokers, b, domainsFor(t, "events"))) // commits 300
	produce(t, brokers, msgs[300:])

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	must(t, err)
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = "raw-events"
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = 0, 500 // offsets 300-499 go before the sink reads them
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	res, err := req.RequestWith(context.Background(), cl)
	must(t, err)
	if code := res.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("delete records: error code %d", code)
	}

	s := runToEnd(t, options(brokers, b, domainsFor(t, "events")))
	if n := s.Stats().Skipped.Load(); n != 200 {
		t.Fatalf("skipped %d offsets, want the 200 deleted", n)
	}
	_, metrics := get(t, s, "/metrics")
	if !strings.Contains(metrics, `medallion_sink_skipped_offsets_total{topic="raw-events"} 200`) {
		t.Errorf("/metrics does not count the deleted offsets:\n%s", grepLines(metrics, "skipped"))
	}
	counts := bronzeCounts(t, b)
	for o := 0; o < 900; o++ {
		in := counts[fmt.Sprintf("raw-events/0/%d", o)] > 0
		if want := o < 300 || o >= 500; in != want {
			t.Fatalf("offset %d in bronze: %v, want %v", o, in, want)
		}
	}
}

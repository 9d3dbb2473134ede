package sink_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/medtype"
)

// debianPython is the python3 that Debian's python3-confluent-kafka is
// installed for (a python3 earlier on PATH may be another one).
const debianPython = "/usr/bin/python3"

// tool finds an outside client the tests drive; .ci/ensure-clients (run by
// make test) installs them.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run .ci/ensure-clients (make test does)", name)
	}
	return p
}

// producerPy produces with confluent-kafka (librdkafka): n JSON events
// with keys and per-message headers to one partition, in one compression
// codec; with --txn, three transactions of n, the second aborted.
const producerPy = `
import json, sys
from confluent_kafka import Producer
brokers, topic, partition, codec, n, prefix, txn = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7] == "txn"
conf = {"bootstrap.servers": brokers, "compression.type": codec, "linger.ms": 20, "broker.address.family": "v4"}
if txn:
    conf["transactional.id"] = prefix
p = Producer(conf)
def send(tag, i):
    ev = {"event_id": "%s-%s-%d" % (prefix, tag, i), "event_type": "view_item", "event_timestamp": "2024-01-15T10:%02d:%02d.000Z" % (i // 60 % 60, i % 60), "user_id": "u-%d" % i}
    p.produce(topic, key=("%s-%s-%d" % (prefix, tag, i)).encode(), value=json.dumps(ev).encode(), partition=partition,
              headers=[("producer", b"confluent-kafka"), ("seq", str(i).encode())])
if not txn:
    for i in range(n):
        send(codec, i)
    if p.flush(30) != 0:
        sys.exit("not all messages were delivered")
    sys.exit(0)
p.init_transactions(30)
for tag, commit in (("committed1", True), ("aborted", False), ("committed2", True)):
    p.begin_transaction()
    for i in range(n):
        send(tag, i)
    p.flush(30)
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)
`

// pythonProduce runs producerPy.
func pythonProduce(t *testing.T, brokers []string, partition int, codec string, n int, prefix string, txn bool) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "produce.py")
	must(t, os.WriteFile(script, []byte(producerPy), 0o644))
	mode := "plain"
	if txn {
		mode = "txn"
	}
	cmd := exec.Command(debianPython, script, strings.Join(brokers, ","), "raw-events", strconv.Itoa(partition), codec, strconv.Itoa(n), prefix, mode)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("confluent-kafka producer (%s, %s): %v\n%s", codec, mode, err, out)
	}
}

// kcatProduce produces n JSON events with keys and headers through kcat.
func kcatProduce(t *testing.T, brokers []string, partition int, codec string, n int) {
	t.Helper()
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "kcat-%s-%d|{\"event_id\":\"kcat-%s-%d\",\"event_type\":\"view_item\",\"event_timestamp\":\"2024-01-15T11:%02d:%02d.000Z\",\"user_id\":\"u-%d\"}\n",
			codec, i, codec, i, i/60%60, i%60, i)
	}
	cmd := exec.Command(tool(t, "kcat"), "-P", "-b", strings.Join(brokers, ","), "-t", "raw-events", "-p", strconv.Itoa(partition),
		"-z", codec, "-K", "|", "-H", "producer=kcat", "-H", "codec="+codec, "-X", "broker.address.family=v4")
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat (%s): %v\n%s", codec, err, out)
	}
}

// TestOutsideProducers: batches from librdkafka (kcat and confluent-kafka)
// in each compression codec, with keys and headers, reach bronze exactly
// as produced: every record once, with its key, payload and headers.
func TestOutsideProducers(t *testing.T) {
	c := kcluster(t)
	brokers := c.ListenAddrs()
	const n = 250
	kcatProduce(t, brokers, 0, "gzip", n)
	kcatProduce(t, brokers, 1, "snappy", n)
	pythonProduce(t, brokers, 2, "lz4", n, "py", false)
	pythonProduce(t, brokers, 0, "zstd", n, "py", false)

	b := localBronze(t)
	runToEnd(t, options(brokers, b, domainsFor(t, "events")))

	got := map[string]bronze.Record{}
	eachRecord(t, b, func(_ bronze.File, r bronze.Record) {
		if _, dup := got[string(r.Key)]; dup {
			t.Fatalf("%s is in bronze twice", r.Key)
		}
		got[string(r.Key)] = r
	})
	if len(got) != 4*n {
		t.Fatalf("bronze has %d records, want %d", len(got), 4*n)
	}
	for _, codec := range []string{"gzip", "snappy", "lz4", "zstd"} {
		for i := range n {
			key := fmt.Sprintf("kcat-%s-%d", codec, i)
			want := map[string]string{"producer": "kcat", "codec": codec}
			if codec == "lz4" || codec == "zstd" {
				key = fmt.Sprintf("py-%s-%d", codec, i)
				want = map[string]string{"producer": "confluent-kafka", "seq": strconv.Itoa(i)}
			}
			r, ok := got[key]
			if !ok {
				t.Fatalf("%s is not in bronze", key)
			}
			var ev map[string]any
			if err := json.Unmarshal([]byte(r.Payload), &ev); err != nil || ev["event_id"] != key {
				t.Fatalf("%s: payload %q", key, r.Payload)
			}
			var headers map[string]string
			must(t, json.Unmarshal([]byte(r.Headers), &headers))
			if fmt.Sprint(headers) != fmt.Sprint(want) {
				t.Fatalf("%s: headers %v, want %v", key, headers, want)
			}
		}
	}
}

// TestMetricsPassPromtool: /metrics, after a run that used every series
// (bronze files, dead letters, a taken key), passes Prometheus's own
// linter.
func TestMetricsPassPromtool(t *testing.T) {
	promtool := tool(t, "promtool")
	brokers := cluster(t, "raw-events")
	msgs, err := generate.Generate(generate.Options{Seed: 5, Start: medtype.MustDate("2024-01-15"), Days: 1, EventsPerDay: 3000,
		Unroutable: 0.01, Domains: []string{"events"}})
	must(t, err)
	produce(t, brokers, msgs)
	o := options(brokers, localBronze(t), domainsFor(t, "events"))
	s := runToEnd(t, o)
	_, metrics := get(t, s, "/metrics")
	for _, series := range []string{"medallion_sink_dlq_messages_total", "medallion_sink_files_written_total", "medallion_sink_kafka_errors_total",
		"medallion_sink_messages_already_in_bronze_total", "medallion_sink_unconfirmed_messages_total"} {
		if !strings.Contains(metrics, "# HELP "+series+" ") {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(metrics)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

package testenv

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Build compiles a package of the module (e.g. "cmd/medallion") into a
// temporary folder and returns the binary.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, "./"+pkg)
	cmd.Dir = RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Kfake is internal/kfakeserver running in its own process.
type Kfake struct {
	Addr string // host:port
	cmd  *exec.Cmd
}

// StartKfake starts the kfakeserver binary with args and waits for its
// "ready <addr>" line. The process is killed when the test ends.
func StartKfake(t testing.TB, bin string, args ...string) *Kfake {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the test
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("testenv: kfakeserver: %q, %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return &Kfake{Addr: strings.TrimSpace(strings.TrimPrefix(line, "ready ")), cmd: cmd}
}

// Stop ends the broker with SIGTERM (with -data-dir it saves its state)
// and waits for it to exit.
func (k *Kfake) Stop(t testing.TB) {
	t.Helper()
	if err := k.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = k.cmd.Wait()
}

// Pid is the broker process's id.
func (k *Kfake) Pid() int { return k.cmd.Process.Pid }

// Port is the broker's port, to start it again on.
func (k *Kfake) Port() string {
	_, port, _ := strings.Cut(k.Addr, ":")
	return port
}

// KafkaClient does not share kafka-go's default connection pool, whose
// connections to a broker that restarted fail once each.
func KafkaClient(brokers []string) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(brokers...), Transport: &kafka.Transport{IdleTimeout: time.Second}}
}

// EndOffsets is each of a topic's partitions' end offset.
func EndOffsets(t testing.TB, brokers []string, topic string, partitions int) map[int]int64 {
	t.Helper()
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := range partitions {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	res, err := KafkaClient(brokers).ListOffsets(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Fatal(p.Error)
		}
		out[p.Partition] = p.LastOffset
	}
	return out
}

// GroupCommitted is a consumer group's committed offset of each of a
// topic's partitions (-1 for none).
func GroupCommitted(t testing.TB, brokers []string, group, topic string, partitions int) map[int]int64 {
	t.Helper()
	req := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {}}}
	for p := range partitions {
		req.Topics[topic] = append(req.Topics[topic], p)
	}
	res, err := KafkaClient(brokers).OffsetFetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

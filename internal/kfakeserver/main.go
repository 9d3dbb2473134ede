// Command kfakeserver runs franz-go's in-process Kafka (kfake) as its own
// process on a loopback port, optionally filled with a backlog of
// clickstream-like JSON messages. The sink benchmark uses it so that the
// broker's work and memory are not counted as the sink's. Not for
// production: kfake keeps everything in memory.
//
//	go run ./internal/kfakeserver -port 9092 -topic raw-events -partitions 6 -messages 1000000
//
// SIGTERM or SIGINT closes the cluster (with -data-dir, after saving it).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 9092, "loopback port")
	topic := flag.String("topic", "raw-events", "topic to create and fill")
	partitions := flag.Int("partitions", 6, "partitions of the topic")
	messages := flag.Int("messages", 0, "messages to produce before reporting ready")
	dataDir := flag.String("data-dir", "", "keep the cluster's state in this folder, so a restart on the same port resumes it (tests restart the broker this way)")
	flag.Parse()
	// kfake keeps the whole backlog in its heap. With the default GOGC the
	// heap grew to twice the backlog between collections, and on the
	// sink benchmark's shared two cores that cost the consumer under test
	// about a tenth of its throughput (BENCHMARKS.md); a tighter heap also
	// lets a 10M-message backlog fit this machine comfortably.
	debug.SetGCPercent(50)

	opts := []kfake.Opt{kfake.Ports(*port), kfake.SeedTopics(int32(*partitions), *topic), kfake.AllowAutoTopicCreation(),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond)}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir), kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	if *messages > 0 {
		if err := fill(addr, *topic, *messages); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("ready %s\n", addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
}

// fill produces n events of about 300 bytes, round-robin over the partitions,
// with event timestamps over one day.
func fill(addr, topic string, n int) error {
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.RoundRobin{}, BatchSize: 5000,
		BatchBytes: 16 << 20, BatchTimeout: 10 * time.Millisecond, RequiredAcks: kafka.RequireOne}
	defer w.Close()
	day := time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)
	pad := strings.Repeat("x", 40)
	batch := make([]kafka.Message, 0, 5000)
	for i := 0; i < n; i++ {
		ts := day.Add(time.Duration(i%86_400_000) * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
		v := fmt.Sprintf(`{"event_id":"e-%012d","event_type":"view_item","event_timestamp":"%s","user_id":"u-%d","session_id":"s-%08d","device":"ios","city":"Austin","restaurant_id":"r-%d","item_id":"m-%d","order_id":null,"amount":null,"properties":{"note":"%s"}}`,
			i, ts, i%50_000, i/20, i%20, i%60, pad)
		batch = append(batch, kafka.Message{Key: []byte(fmt.Sprintf("e-%d", i)), Value: []byte(v), Time: time.Now()})
		if len(batch) == cap(batch) || i == n-1 {
			if err := w.WriteMessages(context.Background(), batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

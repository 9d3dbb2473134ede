package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/sink"
	"github.com/medallionlake/medallion/storage/client"
)

func (a *app) sinkCommand() *cobra.Command {
	var (
		untilEnd    bool
		maxDuration time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sink",
		Short: "Consume the domains' Kafka topics into bronze (at-least-once)",
		Long: `Consume every topic of the configured domains with a Kafka consumer group and
write bronze Parquet files; offsets are committed only after the files (and
dead letters) they cover are durable. Run one process per group member.

A partition's batch is written when it reaches sink.flush_messages,
sink.flush_bytes or sink.flush_interval. If the batch before it is still being
written, it reads on (up to 4 times those limits), so with a backlog a file
holds up to 4 x sink.flush_messages messages. Each batch is one file per
partition date, named by its first offset, and one commit. A crash replays at
most that one uncommitted batch per partition, from the same first offset.

Bronze files are write-once: a write whose key is taken (a replay, or a member
that stalled past its session and woke up after a rebalance) never replaces
the file there; it writes only the offsets that file lacks. Every committed
offset is in bronze. A record is in bronze twice only if a member that had
lost its partitions wrote it first (medallion_sink_unconfirmed_messages_total);
silver reads each topic, partition and offset once.

Messages that are not JSON objects in UTF-8, or whose timestamp field is
missing, unparseable or outside timestamp_bounds, go to dlq-<topic> with headers
error, source_topic, source_partition and source_offset. A dead letter larger
than sink.dlq_max_message_bytes keeps what fits of it, with headers
original_size and truncated. The sink reads read_committed: transaction
markers are skipped and counted, and records of aborted transactions are
dropped before bronze.

Broker errors that may pass (coordinator moves, rebalances, leader changes,
timeouts, lost connections) are retried with backoff, and nothing is committed
meanwhile. Errors retrying cannot fix (authorization, SASL, TLS) exit 1 at once;
an unknown topic, or brokers that never answered, after sink.topic_wait.

SIGTERM or SIGINT flushes every buffer and commits, within sink.shutdown_timeout;
if that fails, the command logs the partitions and offsets left uncommitted and
exits 1 (the next run reads them again).

--until-end captures the end offsets at start, consumes up to them, flushes,
commits and exits 0: the cron-friendly mode. In a group shared with other
members (a long-running sink, an overlapping run), a partition another member
holds counts as done once the group's committed offset reaches its end.
--max-duration bounds the wait: the run then commits what it read and exits 1.

Example:
  medallion sink --until-end --max-duration 30m && medallion run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxDuration != 0 && !untilEnd {
				return usageError("--max-duration needs --until-end")
			}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			bucket, err := client.Open(ctx, cfg.Storage)
			if err != nil {
				return err
			}
			dialer, err := sink.Dialer(cfg.Kafka)
			if err != nil {
				return usageError("%s: %v", describeSource(cfg), err)
			}
			s, err := sink.New(sink.Options{Brokers: cfg.Kafka.Brokers, GroupID: cfg.Kafka.GroupID, Dialer: dialer,
				Domains: cfg.Domains, Sink: cfg.Sink, Bucket: bucket, UntilEnd: untilEnd, MaxDuration: maxDuration, SessionTimeout: cfg.Kafka.SessionTimeout, Log: a.log})
			if err != nil {
				return usageError("%v", err)
			}
			if addr := cfg.Sink.HTTPAddr; addr != "" {
				go func() {
					if err := s.Serve(ctx, addr); err != nil {
						a.log.Error("metrics endpoint stopped", "addr", addr, "error", err)
					}
				}()
			}
			start := time.Now()
			a.log.Info("sink starting", "brokers", cfg.Kafka.Brokers, "group", cfg.Kafka.GroupID, "storage", bucket.String(), "until_end", untilEnd)
			err = s.Run(ctx)
			st := s.Stats()
			markers := ""
			if n := st.Markers.Load(); n > 0 {
				markers = fmt.Sprintf(" (and %d transaction markers skipped)", n)
			}
			if n := st.Aborted.Load(); n > 0 {
				markers += fmt.Sprintf(" (%d records of aborted transactions dropped)", n)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sink: %d messages consumed, %d written to %d bronze files, %d dead-lettered in %s%s\n",
				st.Consumed.Load(), st.Written.Load(), st.Files.Load(), st.DLQ.Load(), time.Since(start).Round(time.Millisecond), markers)
			if err != nil && ctx.Err() == nil {
				return err
			}
			if ctx.Err() != nil && err != nil && err != context.Canceled {
				return err
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&untilEnd, "until-end", false, "consume up to the end offsets seen at start, then exit (for cron)")
	cmd.Flags().DurationVar(&maxDuration, "max-duration", 0, "with --until-end: stop (committing what was read) and exit 1 if the end offsets are not reached in this time; 0 for no limit")
	return cmd
}

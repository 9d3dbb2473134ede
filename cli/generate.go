package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/sink"
	"github.com/medallionlake/medallion/storage/client"
)

type generateOptions struct {
	to           string
	domains      []string
	start        string
	days         int
	eventsPerDay int
	duplicates   float64
	late         float64
	malformed    float64
	unroutable   float64
	seed         uint64
	fileRecords  int
}

func (o *generateOptions) flags(cmd *cobra.Command) {
	cmd.Flags().StringSliceVarP(&o.domains, "domain", "d", nil, "only these domains (default: events, orders, restaurants, users)")
	cmd.Flags().StringVar(&o.start, "start", "", "first day, YYYY-MM-DD (default: --days days before today, UTC)")
	cmd.Flags().IntVar(&o.days, "days", 3, "number of days")
	cmd.Flags().IntVar(&o.eventsPerDay, "events-per-day", 5000, "clickstream events per day; orders and users scale with it")
	cmd.Flags().Float64Var(&o.duplicates, "duplicates", 0.02, "fraction of messages delivered twice")
	cmd.Flags().Float64Var(&o.late, "late", 0.01, "fraction of messages arriving after the last day (late data)")
	cmd.Flags().Float64Var(&o.malformed, "malformed", 0.002, "fraction of messages failing validation (quarantine)")
	cmd.Flags().Float64Var(&o.unroutable, "unroutable", 0.001, "fraction of messages with no usable timestamp (dead-letter topic)")
	cmd.Flags().Uint64Var(&o.seed, "seed", 42, "random seed: the same seed and options give the same data")
}

func (o *generateOptions) options(now time.Time) (generate.Options, error) {
	if o.days <= 0 || o.days > 366 {
		return generate.Options{}, usageError("--days %d: want 1 to 366", o.days)
	}
	if o.eventsPerDay <= 0 {
		return generate.Options{}, usageError("--events-per-day must be positive")
	}
	for name, f := range map[string]float64{"--duplicates": o.duplicates, "--late": o.late, "--malformed": o.malformed, "--unroutable": o.unroutable} {
		if f < 0 || f > 0.5 {
			return generate.Options{}, usageError("%s %g: want a fraction from 0 to 0.5", name, f)
		}
	}
	start := medtype.DateOf(now).AddDays(-o.days)
	if o.start != "" {
		d, err := medtype.ParseDate(o.start)
		if err != nil {
			return generate.Options{}, usageError("--start: %v", err)
		}
		start = d
	}
	for _, d := range o.domains {
		if !slices.Contains(generate.AllDomains, d) {
			return generate.Options{}, usageError("--domain %q: the generator knows %v", d, generate.AllDomains)
		}
	}
	return generate.Options{Seed: o.seed, Start: start, Days: o.days, EventsPerDay: o.eventsPerDay, Duplicates: o.duplicates,
		Malformed: o.malformed, Unroutable: o.unroutable, Late: o.late, Domains: o.domains}, nil
}

func (a *app) generateCommand() *cobra.Command {
	o := &generateOptions{}
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Write realistic synthetic data for the reference domains into bronze",
		Long: `Generate clickstream events, order CDC, restaurant snapshots and user extracts
following docs/domains.md, with duplicates, out-of-order updates, malformed and late
messages, and write them into bronze exactly as the sink would (messages
without a usable timestamp are counted as dead-lettered, not written).

With --to kafka the messages are produced to the domains' topics (dead
letters included; the sink routes them), each to the partition its key hashes
to, so a topic with 3 partitions gets exactly the data --to bronze writes.

Examples:
  medallion generate --days 7 --events-per-day 20000 --seed 7 && medallion run
  medallion generate --to kafka --days 1 && medallion sink --until-end && medallion run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.to != "bronze" && o.to != "kafka" {
				return usageError("--to %q: want bronze or kafka", o.to)
			}
			opts, err := o.options(time.Now().UTC())
			if err != nil {
				return err
			}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			if o.to == "kafka" {
				return a.generateKafka(cmd, cfg, opts)
			}
			_, err = a.generateBronze(cmd.Context(), cmd.OutOrStdout(), cfg, opts, true)
			return err
		},
	}
	cmd.Flags().StringVar(&o.to, "to", "bronze", "destination: bronze (as the sink would write it) or kafka (the domains' topics on kafka.brokers)")
	o.flags(cmd)
	return cmd
}

// generateBronze generates and writes bronze; with includeLate the late
// messages are written too (after the on-time ones), else they are returned
// for the caller to write later.
func (a *app) generateBronze(ctx context.Context, w io.Writer, cfg *config.Config, opts generate.Options, includeLate bool) ([]generate.Message, error) {
	msgs, err := generate.Generate(opts)
	if err != nil {
		return nil, usageError("%v", err)
	}
	bucket, err := client.Open(ctx, cfg.Storage)
	if err != nil {
		return nil, err
	}
	var dup, bad, dead, late int
	for _, m := range msgs {
		switch {
		case m.Unroutable:
			dead++
		case m.Malformed:
			bad++
		}
		if m.Duplicate {
			dup++
		}
		if m.Late {
			late++
		}
	}
	now := time.Now()
	st, err := generate.WriteBronze(ctx, bucket, cfg.Domains, msgs, false, 1000, now)
	if err != nil {
		return nil, err
	}
	if includeLate {
		lst, err := generate.WriteBronze(ctx, bucket, cfg.Domains, msgs, true, 1000, now)
		if err != nil {
			return nil, err
		}
		st.Files += lst.Files
		st.Records += lst.Records
	}
	fmt.Fprintf(w, "Generated %d messages for %s to %s (seed %d): %d duplicates, %d malformed (quarantine), %d without a usable timestamp (dead-lettered), %d late.\n",
		len(msgs), opts.Start.String()+" +"+fmt.Sprint(opts.Days)+"d", bucket, opts.Seed, dup, bad, dead, late)
	fmt.Fprintf(w, "Wrote %d bronze files with %d records.\n", st.Files, st.Records)
	return msgs, nil
}

func (a *app) generateKafka(cmd *cobra.Command, cfg *config.Config, opts generate.Options) error {
	msgs, err := generate.Generate(opts)
	if err != nil {
		return usageError("%v", err)
	}
	dialer, err := sink.Dialer(cfg.Kafka)
	if err != nil {
		return usageError("%s: %v", describeSource(cfg), err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Kafka.Brokers...), RequiredAcks: kafka.RequireAll, AllowAutoTopicCreation: true,
		BatchSize: 1000, BatchTimeout: 10 * time.Millisecond, Transport: sink.Transport(dialer)}
	defer w.Close()
	n, err := generate.Produce(cmd.Context(), w, msgs)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Produced %d messages to %v (seed %d, %s +%dd).\n", n, cfg.Kafka.Brokers, opts.Seed, opts.Start, opts.Days)
	return nil
}

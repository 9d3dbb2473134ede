package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
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
	url          string
	tablesOnly   bool
	deletes      float64
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

With --to postgres the orders, restaurants and users are lived out in the
operational tables the built-in extracts read (docs/domains.md, "Source
tables"; created where missing): orders inserted and their status updated,
restaurants and menus updated every hour, users inserted and updated, in the
order of their own timestamps, and at the end --deletes of the users deleted.
Malformed, unroutable and duplicate messages are not applied: a database holds
valid rows, once. --tables-only creates the tables and stops, so that a cdc
extract can start its slot before the rows arrive.

Examples:
  medallion generate --days 7 --events-per-day 20000 --seed 7 && medallion run
  medallion generate --to kafka --days 1 && medallion sink --until-end && medallion run
  medallion generate --to postgres --url postgres://app@db:5432/app && medallion extract && medallion run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains([]string{"bronze", "kafka", "postgres"}, o.to) {
				return usageError("--to %q: want bronze, kafka or postgres", o.to)
			}
			opts, err := o.options(time.Now().UTC())
			if err != nil {
				return err
			}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			switch o.to {
			case "kafka":
				return a.generateKafka(cmd, cfg, opts)
			case "postgres":
				return a.generatePostgres(cmd, cfg, o, opts)
			}
			_, err = a.generateBronze(cmd.Context(), cmd.OutOrStdout(), cfg, opts, true)
			return err
		},
	}
	cmd.Flags().StringVar(&o.to, "to", "bronze", "destination: bronze (as the sink would write it), kafka (the domains' topics on kafka.brokers) or postgres (the operational tables at --url)")
	cmd.Flags().StringVar(&o.url, "url", "", "--to postgres: the database (default: the URL of the configuration's only source)")
	cmd.Flags().BoolVar(&o.tablesOnly, "tables-only", false, "--to postgres: create the operational tables and stop")
	cmd.Flags().Float64Var(&o.deletes, "deletes", 0.01, "--to postgres: fraction of the users deleted at the end")
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

// generatePostgres lives the reference data out in the operational tables.
func (a *app) generatePostgres(cmd *cobra.Command, cfg *config.Config, o *generateOptions, opts generate.Options) error {
	url := o.url
	if url == "" {
		if len(cfg.Sources) != 1 {
			return usageError("--to postgres needs --url (the configuration has %d sources, not one)", len(cfg.Sources))
		}
		url = cfg.Sources[cfg.SourceNames()[0]].URL
	}
	if o.deletes < 0 || o.deletes > 0.5 {
		return usageError("--deletes %g: want a fraction from 0 to 0.5", o.deletes)
	}
	ctx := cmd.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("generate --to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	w := cmd.OutOrStdout()
	if o.tablesOnly {
		if err := generate.CreateTables(ctx, conn); err != nil {
			return err
		}
		fmt.Fprintln(w, "Created the operational tables orders, order_items, restaurants, menu_items and users.")
		return nil
	}
	if len(opts.Domains) == 0 {
		opts.Domains = []string{"orders", "restaurants", "users"}
	}
	msgs, err := generate.Generate(opts)
	if err != nil {
		return usageError("%v", err)
	}
	st, err := generate.ApplyPostgres(ctx, conn, msgs, o.deletes, opts.Seed)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Applied %s +%dd (seed %d) to database %s: %d orders (%d status changes), %d restaurants, %d users (%d updates, %d deleted).\n",
		opts.Start, opts.Days, opts.Seed, conn.Config().Database, st.Orders, st.OrderUpdates, st.Restaurants, st.Users, st.UserUpdates, st.UsersDeleted)
	return nil
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/extract"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/pushmetrics"
	"github.com/medallionlake/medallion/sink"
	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/client"
)

func (a *app) extractCommand() *cobra.Command {
	var (
		sources, extracts []string
		interval          time.Duration
		dropSlot, reset   bool
		to                string
	)
	cmd := &cobra.Command{
		Use:   "extract [--source S] [--extract E] [--interval 30s]",
		Short: "Extract the configured PostgreSQL sources into bronze (for cron)",
		Long: `Read every extract of the sources in the configuration (sources:) into its
domain's bronze, then exit; --interval keeps extracting, every interval, until
stopped. 'medallion run' then processes the new bronze as it does the sink's.
--to kafka produces the rows to the domain's topic on kafka.brokers instead
(keyed by the domain's primary key), for the sink to carry.

snapshot reads every row of the table or query each time, in one consistent
snapshot, and sets the domain's timestamp field to the time of the extract, so
the domain is partitioned by extract date.

incremental reads the rows whose watermark column passed the extract's position,
in (watermark, key) order, so rows sharing a timestamp are never skipped, and
never past the start of a transaction still open on the server, so a row
committed late is never skipped either. The reading role needs
pg_read_all_stats to see those transactions. The position advances only once
the bronze files are written: a crash in between extracts that batch again
(silver's dedup absorbs it). Masked columns (mask: {email: sha256}) are hashed
in the query, so the raw value never leaves the source.

Exit code 1 if an extract failed (the others still run; the failed one keeps
its position). A watermark or key column whose type changed since the position
was taken fails the extract, naming the column: --reset forgets the position,
and the next run reads every row again.

cdc captures the table's inserts, updates and deletes from the write-ahead log
(wal_level = logical) through a replication slot and a publication it creates,
medallion_<source>_<extract>: each change is a record with op c, u or d (a
delete carries the key). A run captures until no change has arrived for 2s.
The slot keeps the server's WAL until the changes are in bronze; a slot no
longer used must be dropped (--drop-slot), or the WAL grows: extract warns past
max_retained_wal.

Examples:
  medallion extract
  medallion extract --source app --extract users --interval 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to != "bronze" && to != "kafka" {
				return usageError("--to %q: want bronze or kafka", to)
			}
			if dropSlot {
				return a.dropSlots(cmd, sources, extracts)
			}
			if reset {
				return a.resetExtracts(cmd, sources, extracts)
			}
			return a.extract(cmd, sources, extracts, interval, to)
		},
	}
	cmd.Flags().StringSliceVar(&sources, "source", nil, "only these sources (repeat or comma-separate)")
	cmd.Flags().StringSliceVar(&extracts, "extract", nil, "only these extracts (repeat or comma-separate)")
	cmd.Flags().DurationVar(&interval, "interval", 0, "keep extracting, every interval, until stopped (0: once)")
	cmd.Flags().StringVar(&to, "to", "bronze", "bronze, or kafka: produce to the domain's topic on kafka.brokers, for the sink to carry")
	cmd.Flags().BoolVar(&dropSlot, "drop-slot", false, "remove the replication slots (and publications) of the selected cdc extracts, and exit")
	cmd.Flags().BoolVar(&reset, "reset", false, "forget the positions of the selected incremental and snapshot extracts, so their next run reads every row again, and exit")
	return cmd
}

// extractJob is one configured extract, ready to run.
type extractJob struct {
	source, name string
	url, mode    string
	table        string // "" for a query
	run          func(ctx context.Context, conn *pgx.Conn, store meta.Store, t extract.Target) (extract.Result, error)
	domain       config.Domain
	// cdc is set for a cdc extract (its slot, for --drop-slot and the
	// retained WAL), with the most WAL it may keep before a warning.
	cdc    *extract.CDC
	maxWAL int64
}

// openExtracts loads the configuration, selects its extracts and opens
// the meta store.
func (a *app) openExtracts(ctx context.Context, sources, names []string) (*config.Config, []extractJob, meta.Store, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, nil, nil, err
	}
	jobs, err := extractJobs(cfg, sources, names)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := a.openMeta(ctx, cfg)
	return cfg, jobs, store, err
}

func (a *app) extract(cmd *cobra.Command, sources, names []string, interval time.Duration, to string) error {
	ctx := cmd.Context()
	cfg, jobs, store, err := a.openExtracts(ctx, sources, names)
	if err != nil {
		return err
	}
	defer store.Close()
	bucket, err := client.Open(ctx, cfg.Storage)
	if err != nil {
		return fmt.Errorf("open storage (storage.url in %s): %w", describeSource(cfg), err)
	}
	var out extract.Output
	if to == "kafka" {
		d, err := sink.Dialer(cfg.Kafka)
		if err != nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("kafka: %w", err)}
		}
		k := extract.NewKafka(cfg.Kafka.Brokers, sink.Transport(d))
		defer k.Close()
		out = k
	}
	for {
		failed := runExtracts(ctx, cmd.OutOrStdout(), store, bucket, out, jobs, cfg.Metrics)
		if interval <= 0 {
			if failed > 0 {
				return &exitError{code: ExitFailed, err: fmt.Errorf("%d of %d extracts failed; their positions did not move", failed, len(jobs))}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// extractJobs are the configured extracts the flags select.
func extractJobs(cfg *config.Config, sources, names []string) ([]extractJob, error) {
	if len(cfg.Sources) == 0 {
		return nil, usageError("no sources: configure sources: in %s (see medallion.example.yaml)", describeSource(cfg))
	}
	for _, s := range sources {
		if _, ok := cfg.Sources[s]; !ok {
			return nil, usageError("unknown source %q (configured: %s)", s, strings.Join(cfg.SourceNames(), ", "))
		}
	}
	var jobs []extractJob
	for _, sn := range cfg.SourceNames() {
		if len(sources) > 0 && !slices.Contains(sources, sn) {
			continue
		}
		src := cfg.Sources[sn]
		for _, en := range src.ExtractNames() {
			if len(names) > 0 && !slices.Contains(names, en) {
				continue
			}
			e := src.Extracts[en]
			if e.QueryFile != "" {
				q, err := os.ReadFile(e.QueryFile)
				if err != nil {
					return nil, usageError("sources.%s.extracts.%s.query_file: %v", sn, en, err)
				}
				e.Query, e.QueryFile = string(q), ""
			}
			d, _ := cfg.Domain(e.DomainName(en))
			jobs = append(jobs, newExtractJob(sn, en, src.URL, e, d))
		}
	}
	if len(jobs) == 0 {
		return nil, usageError("no extract matches --extract %s", strings.Join(names, ","))
	}
	return jobs, nil
}

func newExtractJob(source, name, url string, e config.Extract, d config.Domain) extractJob {
	j := extractJob{source: source, name: name, url: url, mode: e.Mode, domain: d, table: e.Table}
	from := e.Table
	if e.Query != "" {
		from = e.Query
	}
	switch e.Mode {
	case config.ModeSnapshot:
		x := extract.Snapshot{From: from, Mask: e.Mask, Batch: e.Batch, Field: d.TimestampField}
		j.run = func(ctx context.Context, conn *pgx.Conn, store meta.Store, t extract.Target) (extract.Result, error) {
			return x.Run(ctx, conn, store, t, nil)
		}
	case config.ModeCDC:
		x := &extract.CDC{Table: e.Table, Slot: extract.SlotName(source, name), Mask: e.Mask, Batch: e.Batch, Field: d.TimestampField,
			Enrich: e.Query}
		if len(e.Key) == 1 {
			x.EnrichKey = e.Key[0]
		}
		j.cdc, j.maxWAL = x, e.RetainedWALLimit()
		j.run = func(ctx context.Context, conn *pgx.Conn, store meta.Store, t extract.Target) (extract.Result, error) {
			return x.Run(ctx, conn, url, store, t, nil)
		}
	default:
		x := extract.Incremental{From: from, Watermark: e.Watermark, Key: e.Key, Batch: e.Batch, Mask: e.Mask}
		j.run = func(ctx context.Context, conn *pgx.Conn, store meta.Store, t extract.Target) (extract.Result, error) {
			return x.Run(ctx, conn, store, t, nil)
		}
	}
	return j
}

// runExtracts runs every job once, printing a line each, and returns how
// many failed.
func runExtracts(ctx context.Context, w io.Writer, store meta.Store, bucket storage.Bucket, out extract.Output, jobs []extractJob, m config.Metrics) (failed int) {
	conns := map[string]*pgx.Conn{}
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	var pushed []pushmetrics.Extract
	defer func() { pushExtractMetrics(ctx, w, m, pushed) }()
	for _, j := range jobs {
		ran := pushmetrics.Extract{Source: j.source, Extract: j.name, Mode: j.mode, RetainedWAL: -1, RetainedWALLimit: j.maxWAL}
		start := time.Now()
		t := extract.Target{Bucket: bucket, Domain: j.domain, Source: j.source, Extract: j.name, Table: j.table, Out: out}
		conn, err := connect(ctx, conns, j)
		var res extract.Result
		if err == nil {
			res, err = j.run(ctx, conn, store, t)
		} else if ferr := store.FailExtract(ctx, j.source, j.name, j.mode, err.Error(), time.Now()); ferr != nil {
			err = errors.Join(err, ferr)
		}
		if err != nil {
			failed++
			ran.Failed = true
			pushed = append(pushed, ran)
			fmt.Fprintf(w, "%s.%s: FAILED: %v\n", j.source, j.name, err)
			continue
		}
		into := fmt.Sprintf("%s bronze (%d files)", j.domain.Name, res.Files)
		if out != nil {
			into = "topic " + j.domain.Topics[0]
		}
		line := fmt.Sprintf("%s.%s: %d rows in %d batches into %s", j.source, j.name, res.Rows, res.Batches, into)
		if res.DeadLetters > 0 {
			line += fmt.Sprintf(", %d rows without a usable %s to %s/%s/", res.DeadLetters, j.domain.TimestampField, extract.DeadLetterRoot, j.domain.Name)
		}
		if res.Position.Watermark != "" {
			line += ", up to " + res.Position.Watermark
		}
		fmt.Fprintf(w, "%s in %s\n", line, time.Since(start).Round(time.Millisecond))
		ran.Rows, ran.RetainedWAL = int64(res.Rows), checkRetainedWAL(ctx, w, store, conn, j)
		pushed = append(pushed, ran)
	}
	return failed
}

// checkRetainedWAL measures how much WAL a cdc slot keeps (-1 for other
// modes, or when it cannot), records it for status and warns when it is
// more than allowed.
func checkRetainedWAL(ctx context.Context, w io.Writer, store meta.Store, conn *pgx.Conn, j extractJob) int64 {
	if j.cdc == nil {
		return -1
	}
	n, err := j.cdc.RetainedWAL(ctx, conn)
	if err == nil {
		err = store.RecordRetainedWAL(ctx, j.source, j.name, n)
	}
	if err != nil {
		fmt.Fprintf(w, "WARNING: %s.%s: cannot measure the WAL the slot %s keeps: %v\n", j.source, j.name, j.cdc.Slot, err)
		return -1
	}
	if n > j.maxWAL {
		fmt.Fprintf(w, "WARNING: %s.%s: %s\n", j.source, j.name, walWarning(j.cdc.Slot, n, j.maxWAL))
	}
	return n
}

// walWarning says that a slot keeps more WAL than allowed, and what to do.
func walWarning(slot string, n, limit int64) string {
	return fmt.Sprintf("the slot %s keeps %s of WAL on the server (max_retained_wal %s): extract more often, or --drop-slot a slot no longer used",
		slot, config.ByteSize(n), config.ByteSize(limit))
}

// pushExtractMetrics pushes the extracts' runs to metrics.pushgateway_url;
// a Pushgateway that is down is reported, and fails nothing.
func pushExtractMetrics(ctx context.Context, w io.Writer, m config.Metrics, runs []pushmetrics.Extract) {
	if m.PushgatewayURL == "" || len(runs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := pushmetrics.PushExtracts(ctx, m.PushgatewayURL, m.Job, runs, time.Now()); err != nil {
		fmt.Fprintf(w, "WARNING: could not push metrics: %v\n", err)
	}
}

// connect opens one connection per source, reused by its extracts.
func connect(ctx context.Context, conns map[string]*pgx.Conn, j extractJob) (*pgx.Conn, error) {
	if c, ok := conns[j.source]; ok {
		return c, nil
	}
	c, err := pgx.Connect(ctx, j.url)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", j.source, err)
	}
	conns[j.source] = c
	return c, nil
}

// resetExtracts forgets the positions of the selected incremental and
// snapshot extracts (a cdc extract's position belongs to its slot:
// --drop-slot).
func (a *app) resetExtracts(cmd *cobra.Command, sources, names []string) error {
	ctx := cmd.Context()
	_, jobs, store, err := a.openExtracts(ctx, sources, names)
	if err != nil {
		return err
	}
	defer store.Close()
	w := cmd.OutOrStdout()
	for _, j := range jobs {
		if j.cdc != nil {
			fmt.Fprintf(w, "%s.%s: a cdc extract starts anew with --drop-slot\n", j.source, j.name)
			continue
		}
		if err := store.ForgetExtract(ctx, j.source, j.name); err != nil {
			return err
		}
		fmt.Fprintf(w, "%s.%s: position forgotten; the next run reads every row again\n", j.source, j.name)
	}
	return nil
}

// dropSlots removes the slots of the selected cdc extracts.
func (a *app) dropSlots(cmd *cobra.Command, sources, names []string) error {
	ctx := cmd.Context()
	_, jobs, store, err := a.openExtracts(ctx, sources, names)
	if err != nil {
		return err
	}
	defer store.Close()
	conns := map[string]*pgx.Conn{}
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	dropped := 0
	for _, j := range jobs {
		if j.cdc == nil {
			continue
		}
		conn, err := connect(ctx, conns, j)
		if err != nil {
			return err
		}
		if err := j.cdc.DropSlot(ctx, conn); err != nil {
			return fmt.Errorf("%s.%s: %w", j.source, j.name, err)
		}
		if err := store.ForgetExtract(ctx, j.source, j.name); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s.%s: dropped the replication slot %s; the next extract starts capturing anew\n", j.source, j.name, j.cdc.Slot)
		dropped++
	}
	if dropped == 0 {
		return usageError("no cdc extract selected: --drop-slot removes the slots of cdc extracts")
	}
	return nil
}

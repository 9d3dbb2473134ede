package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/pushmetrics"
)

func (a *app) runCommand() *cobra.Command {
	var (
		workers     int
		doms        []string
		format      string
		fullListing bool
		noProcess   bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Discover bronze partitions, detect late data, and process the queue (for cron)",
		Long: `Process everything that needs processing, then print a summary.

A run takes the overlap lock (a second run exits at once), rescues partitions
whose worker crashed, lists every domain's bronze partitions, marks new ones
PENDING and DONE ones whose files changed LATE, moves FAILED partitions to
RETRYING (or DEAD after max_retries), and processes PENDING, RETRYING and
REPROCESSING partitions oldest first with --workers in parallel.

Between full listings (bronze.listing.full_every, default 24h) a run lists
only the partitions dated within bronze.listing.recent (7d) of the newest one,
and newer, and new partitions of any date: a late file in an older partition is
seen by the next full listing, or at once with --full-listing.

Safe to repeat: a second run with nothing new processes nothing and writes no
table snapshot. Exit code 1 if any partition failed or is DEAD.

--no-process does all of that but the processing, and leaves the queue to
worker processes on other machines (medallion worker; PostgreSQL meta store).

Example (crontab, daily at 06:00 UTC):
  0 6 * * * medallion run --config /etc/medallion/medallion.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := tableOrJSON(format); err != nil {
				return err
			}
			return a.runPipeline(cmd, pipeline.Options{Command: "run", Workers: workers, Domains: doms, FullListing: fullListing, NoProcess: noProcess}, format, nil)
		},
	}
	cmd.Flags().BoolVar(&fullListing, "full-listing", false, "list all of bronze, to see late files in any partition now (default: every bronze.listing.full_every)")
	cmd.Flags().BoolVar(&noProcess, "no-process", false, "discover, requeue and rescue, but leave the queue to medallion worker processes")
	cmd.Flags().IntVarP(&workers, "workers", "w", 0, "partitions processed in parallel (default pipeline.workers)")
	cmd.Flags().StringSliceVarP(&doms, "domain", "d", nil, "only these domains (repeat or comma-separate)")
	cmd.Flags().StringVarP(&format, "format", "f", "table", "summary format: table or json")
	return cmd
}

func (a *app) backfillCommand() *cobra.Command {
	var (
		from, to  string
		workers   int
		doms      []string
		reprocess string
		dryRun    bool
		force     bool
		rebuild   bool
		tableName string
		format    string
		noProcess bool
	)
	cmd := &cobra.Command{
		Use:   "backfill --from YYYY-MM-DD --to YYYY-MM-DD",
		Short: "Re-run a date range (including FAILED and DEAD partitions)",
		Long: `Reset the partitions of a date range to PENDING and process them in this call.

--reprocess all (default) resets every partition in the range, DONE ones
included; --reprocess failed only FAILED, RETRYING and DEAD ones. Dates in the
range without bronze data are reported, never invented. --dry-run lists what
would run and changes nothing.

Reprocessing a DONE partition leaves every table row-for-row identical
unless its bronze files changed; a table partition that already holds exactly
its rows is not rewritten, unless its live file is damaged (see medallion
verify). --force rewrites them all, in new snapshots: a repair of damage that
verify cannot see (a file changed in place with its size and row count kept).

--no-process resets and queues the range without processing it, for worker
processes on other machines to drain (medallion worker --drain).

--rebuild --table T rebuilds one table after a schema change Iceberg cannot
make in place (a column dropped, renamed, narrowed or retyped; the run names
the table and column). One snapshot empties the table as a new version, then
every partition of the table's domain is reprocessed from bronze, so the table
fills date by date. Its older snapshots keep the old schema and rows for
query --as-of until maintain expires them. It refuses if bronze.retention has
archived any of the domain's partitions, whose rows could not come back.

Examples:
  medallion backfill --domain orders --from 2024-01-10 --to 2024-01-15
  medallion backfill --rebuild --table gold.orders_daily`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rebuild || tableName != "" {
				if err := checkRebuild(tableName, from, to, doms, reprocess, force); err != nil {
					return err
				}
				if err := tableOrJSON(format); err != nil {
					return err
				}
				return a.runPipeline(cmd, pipeline.Options{Command: "backfill", Workers: workers, Reprocess: "all", DryRun: dryRun}, format,
					func(eng *engine, opts *pipeline.Options) error { return rebuildTarget(cmd, eng, tableName, opts) })
			}
			if from == "" || to == "" {
				return usageError("backfill needs --from and --to (YYYY-MM-DD)")
			}
			f, err := medtype.ParseDate(from)
			if err != nil {
				return usageError("--from: %v", err)
			}
			t, err := medtype.ParseDate(to)
			if err != nil {
				return usageError("--to: %v", err)
			}
			if t.Before(f) {
				return usageError("--to %s is before --from %s", to, from)
			}
			if reprocess != "all" && reprocess != "failed" {
				return usageError("--reprocess %q: want all or failed", reprocess)
			}
			if err := tableOrJSON(format); err != nil {
				return err
			}
			return a.runPipeline(cmd, pipeline.Options{Command: "backfill", Workers: workers, Domains: doms, From: f, To: t,
				Reprocess: reprocess, DryRun: dryRun, Force: force, NoProcess: noProcess}, format, nil)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first partition date (inclusive)")
	cmd.Flags().StringVar(&to, "to", "", "last partition date (inclusive)")
	cmd.Flags().IntVarP(&workers, "workers", "w", 0, "partitions processed in parallel (default pipeline.workers)")
	cmd.Flags().StringSliceVarP(&doms, "domain", "d", nil, "only these domains (repeat or comma-separate)")
	cmd.Flags().StringVar(&reprocess, "reprocess", "all", "which partitions to reset: all or failed")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would run; change nothing")
	cmd.Flags().BoolVar(&force, "force", false, "rewrite every table partition, even those that already hold their rows")
	cmd.Flags().BoolVar(&noProcess, "no-process", false, "reset and queue the range, but leave processing to medallion worker processes")
	cmd.Flags().BoolVar(&rebuild, "rebuild", false, "rebuild --table from all of its domain's bronze as a new table version (a schema change Iceberg cannot make in place)")
	cmd.Flags().StringVar(&tableName, "table", "", "the table --rebuild rebuilds (namespace.table), e.g. gold.orders_daily")
	cmd.Flags().StringVarP(&format, "format", "f", "table", "summary format: table or json")
	return cmd
}

// runPipeline runs or backfills; prepare, if set, completes the options
// once the engine is open.
func (a *app) runPipeline(cmd *cobra.Command, opts pipeline.Options, format string, prepare func(*engine, *pipeline.Options) error) error {
	ctx := cmd.Context()
	eng, err := a.openEngine(ctx)
	if err != nil {
		return err
	}
	defer eng.close()
	if prepare != nil {
		if err := prepare(eng, &opts); err != nil {
			return err
		}
	}
	if err := checkDomains(eng, opts.Domains); err != nil {
		return err
	}
	sum, err := pipeline.Run(ctx, eng.deps, opts)
	if !opts.DryRun {
		pushMetrics(ctx, eng, sum)
	}
	if err != nil {
		return runErr(err)
	}
	if err := printRun(cmd, sum, opts, format); err != nil {
		return err
	}
	if opts.Command == "run" && eng.cfg.Lake.MaintainAfterRun {
		if err := maintainAfterRun(cmd, eng, format); err != nil {
			return err
		}
	}
	if !sum.Healthy() {
		return &exitError{code: ExitFailed, err: errSilent}
	}
	return nil
}

// pushMetrics pushes what a run or worker did to metrics.pushgateway_url;
// a Pushgateway that is down is logged, and fails nothing.
func pushMetrics(ctx context.Context, eng *engine, sum pipeline.Summary) {
	m := eng.cfg.Metrics
	if m.PushgatewayURL == "" || sum.RunID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := pushmetrics.Push(ctx, m.PushgatewayURL, m.Job, sum, time.Now()); err != nil {
		eng.deps.Log.Warn("could not push metrics", "error", err)
	}
}

func checkDomains(eng *engine, doms []string) error {
	for _, d := range doms {
		if _, ok := eng.cfg.Domain(d); !ok {
			return usageError("unknown domain %q (configured: %s)", d, strings.Join(domainNames(eng.cfg), ", "))
		}
	}
	return nil
}

// printRun prints a run's, backfill's or worker's summary.
func printRun(cmd *cobra.Command, sum pipeline.Summary, opts pipeline.Options, format string) error {
	if format == "json" {
		return writeJSON(cmd.OutOrStdout(), sum)
	}
	printSummary(cmd.OutOrStdout(), sum, opts)
	return nil
}

// listedSince is the earliest date from which a domain listed only its
// recent bronze partitions, "" when every domain listed all.
func listedSince(s pipeline.Summary) string {
	since := ""
	for _, d := range s.Domains {
		if d.ListedSince != "" && (since == "" || d.ListedSince < since) {
			since = d.ListedSince
		}
	}
	return since
}

func printSummary(w io.Writer, s pipeline.Summary, opts pipeline.Options) {
	if opts.DryRun {
		fmt.Fprintf(w, "Dry run: %d partitions would be processed.\n", len(s.Planned))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DOMAIN\tDATE\tSTATE NOW\tFILES")
		for _, p := range s.Planned {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", p.Key.Domain, p.Key.Date, p.Status, len(p.SourceFiles))
		}
		tw.Flush()
		printMissing(w, s)
		return
	}
	fmt.Fprintf(w, "%s %s finished in %s\n\n", strings.ToUpper(s.Command[:1])+s.Command[1:], s.RunID, s.Duration.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "DOMAIN\tPARTITIONS\tNEW\tLATE\tRESET\tPROCESSED\tDONE\tFAILED\tUNHEALTHY\tROWS\t")
	var tot pipeline.DomainSummary
	for _, d := range s.Domains {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", d.Domain, d.Discovered, d.New, d.Late, d.Reset, d.Processed, d.Done, d.Failed, d.Unhealthy, d.Rows)
		tot.Discovered += d.Discovered
		tot.New += d.New
		tot.Late += d.Late
		tot.Reset += d.Reset
		tot.Processed += d.Processed
		tot.Done += d.Done
		tot.Failed += d.Failed
		tot.Unhealthy += d.Unhealthy
		tot.Rows += d.Rows
	}
	fmt.Fprintf(tw, "TOTAL\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", tot.Discovered, tot.New, tot.Late, tot.Reset, tot.Processed, tot.Done, tot.Failed, tot.Unhealthy, tot.Rows)
	tw.Flush()
	queued := 0
	for _, d := range s.Domains {
		queued += d.Queued
	}
	switch {
	case opts.NoProcess:
		fmt.Fprintf(w, "\n%d partitions are queued for `medallion worker`.\n", queued)
	case tot.Processed == 0 && tot.Failed == 0 && s.Command == "worker":
		fmt.Fprintln(w, "\nThe queue is empty.")
	case tot.Processed == 0 && tot.Failed == 0:
		fmt.Fprintln(w, "\nNothing to do: every partition is up to date.")
	}
	if n := len(s.PastSLA); n > 0 {
		fmt.Fprintf(w, "%d partitions are past their SLA (the oldest: %s, %s); `medallion status` lists them.\n", n, s.PastSLA[0].Key, s.PastSLA[0].State)
	}
	if since := listedSince(s); since != "" {
		fmt.Fprintf(w, "Listed the recent bronze partitions (from %s); a full listing runs every bronze.listing.full_every, or with --full-listing.\n", since)
	}
	if len(s.Failures) > 0 {
		fmt.Fprintln(w, "\nFailed partitions:")
		for k, msg := range s.Failures {
			fmt.Fprintf(w, "  %s: %s\n", k, truncate(msg, 200))
		}
	}
	if tot.Unhealthy > 0 {
		fmt.Fprintln(w, "\nUNHEALTHY counts FAILED and DEAD partitions now in the store: see `medallion status`.")
	}
	printKeys(w, "Files arrived for %d archived partitions and were not processed (bronze.retention deleted the rest of their bronze)", s.ArchivedLate)
	printMissing(w, s)
}

// printKeys prints a heading with the count, then one partition a line;
// nothing when there are none.
func printKeys(w io.Writer, heading string, keys []medtype.PartitionKey) {
	if len(keys) == 0 {
		return
	}
	fmt.Fprintf(w, "\n"+heading+":\n", len(keys))
	for _, k := range keys {
		fmt.Fprintf(w, "  %s\n", k)
	}
}

func printMissing(w io.Writer, s pipeline.Summary) {
	printKeys(w, "No bronze data for %d requested partitions", s.Missing)
}

// maintainAfterRun maintains every table (lake.maintain_after_run) and
// prints one line; a failure fails the run, since the tables keep growing
// until it is fixed.
func maintainAfterRun(cmd *cobra.Command, eng *engine, format string) error {
	if w := pipeline.OrphanAgeWarning(eng.deps); w != "" {
		eng.deps.Log.Warn(w)
	}
	reports, err := pipeline.Maintain(cmd.Context(), eng.deps, nil, pipeline.MaintainOptions{Incremental: true})
	if err != nil {
		return fmt.Errorf("maintenance after the run (lake.maintain_after_run): %w", err)
	}
	ret, err := pipeline.ApplyRetention(cmd.Context(), eng.deps, false)
	if err != nil {
		return fmt.Errorf("bronze retention after the run (lake.maintain_after_run): %w", err)
	}
	if format != "json" {
		fmt.Fprintf(cmd.OutOrStdout(), "\n%s\n", maintenanceTotal(reports, false))
		if eng.cfg.Bronze.Retention > 0 {
			fmt.Fprintln(cmd.OutOrStdout(), retentionLine(ret, false))
		}
	}
	return nil
}

// checkRebuild checks the flags of backfill --rebuild.
func checkRebuild(table, from, to string, doms []string, reprocess string, force bool) error {
	switch {
	case table == "":
		return usageError("--rebuild needs --table namespace.table")
	case from != "" || to != "":
		return usageError("--rebuild reprocesses every partition of the table's domain, so the table gets all its rows back; drop --from and --to")
	case len(doms) > 0:
		return usageError("--rebuild takes the domain from --table; drop --domain")
	case reprocess != "all" || force:
		return usageError("--rebuild reprocesses every partition; drop --reprocess and --force")
	}
	return nil
}

// rebuildTarget points the backfill at the table to rebuild and the one
// domain that writes it.
func rebuildTarget(cmd *cobra.Command, eng *engine, table string, opts *pipeline.Options) error {
	id, err := parseTableFlag(table)
	if err != nil {
		return err
	}
	if _, err := tablesOf(cmd.Context(), eng.deps.Lake, id); err != nil {
		return err
	}
	for _, d := range eng.deps.Domains {
		if d.Writes(id.Namespace, id.Name) {
			opts.Domains, opts.Rebuild = []string{d.Name}, id
			return nil
		}
	}
	return usageError("--table: no configured domain writes %s", id)
}

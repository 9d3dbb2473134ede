package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/pipeline"
)

func (a *app) maintainCommand() *cobra.Command {
	var (
		tableName string
		dryRun    bool
		format    string
	)
	cmd := &cobra.Command{
		Use:   "maintain",
		Short: "Compact small files, expire old snapshots and delete files no snapshot needs",
		Long: `Keep the silver, gold and quarantine tables (or --table) healthy, one table at
a time:

1. compact: a partition with more than one data file under
   lake.compact_target_size is rewritten as one file;
2. merge manifests, when the current snapshot plans from more than 8;
3. expire snapshots older than lake.snapshot_retention, keeping at least
   lake.min_snapshots: time travel (query --as-of) reaches back that far;
4. delete the data files, manifests, manifest lists and old metadata files
   that only expired snapshots referenced, and orphans (files no metadata
   references, left by a crashed writer) older than lake.orphan_age;
5. with bronze.retention set (and no --table): delete the bronze files of
   DONE partitions dated before it. Those partitions become ARCHIVED (see
   medallion status): their tables keep their rows, but they can no longer
   be reprocessed, and a backfill over them refuses.

Every removed file is printed with its size and why, then a line per table.
--dry-run prints the same and changes nothing. Safe beside a running run or
sink: each commit retries on a conflict, and a file younger than
lake.orphan_age is never taken for an orphan. run does this itself at its end
when lake.maintain_after_run is true (the default), in an incremental form:
a table unchanged since its last full pass is not compacted, merged or
swept again until lake.orphan_age has passed (only its snapshots' ages are
checked), so an idle run stays cheap. This command always does the full
pass.

Example:
  medallion maintain --table gold.orders_daily --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := tableOrJSON(format); err != nil {
				return err
			}
			named, err := parseTableFlag(tableName)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			eng, err := a.openEngine(ctx)
			if err != nil {
				return err
			}
			defer eng.close()
			ids, err := tablesOf(ctx, eng.deps.Lake, named)
			if err != nil {
				return err
			}
			if w := pipeline.OrphanAgeWarning(eng.deps); w != "" {
				a.log.Warn(w)
			}
			reports, err := pipeline.Maintain(ctx, eng.deps, ids, pipeline.MaintainOptions{DryRun: dryRun})
			var ret pipeline.Retention
			if err == nil && named == nil {
				ret, err = pipeline.ApplyRetention(ctx, eng.deps, dryRun)
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				if jerr := writeJSON(out, maintainOut{Tables: reports, Bronze: ret}); jerr != nil {
					return jerr
				}
			} else {
				printMaintenance(out, reports, dryRun)
				if eng.cfg.Bronze.Retention > 0 && named == nil {
					printRetention(out, ret, dryRun)
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&tableName, "table", "", "maintain one table (namespace.table), e.g. gold.orders_daily")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be done; change nothing")
	cmd.Flags().StringVarP(&format, "format", "f", "table", "output format: table or json")
	return cmd
}

func printMaintenance(w io.Writer, reports []lake.Report, dryRun bool) {
	verb := "deleted"
	if dryRun {
		verb = "would delete"
		fmt.Fprintln(w, "Dry run: nothing is changed.")
	}
	for _, r := range reports {
		for _, c := range r.Compacted {
			fmt.Fprintf(w, "%s: compact %s: %d files (%s) into one\n", r.Table, c.Partition, c.Files, humanize.IBytes(uint64(c.Bytes)))
		}
		for _, d := range r.Deleted {
			fmt.Fprintf(w, "%s %s (%s, %s)\n", verb, d.Key, humanize.IBytes(uint64(d.Size)), d.Why)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TABLE\tSNAPSHOTS\tEXPIRED\tCOMPACTED\tMANIFESTS\tDELETED\tFREED\tYOUNG ORPHANS\t")
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d→%d\t%d\t%s\t%d\t\n", r.Table, r.Snapshots, r.Expired, len(r.Compacted),
			r.ManifestsBefore, r.ManifestsAfter, len(r.Deleted), humanize.IBytes(uint64(r.Freed())), r.Young)
	}
	tw.Flush()
	fmt.Fprintln(w, maintenanceTotal(reports, dryRun))
}

// maintenanceTotal sums the reports in one line.
func maintenanceTotal(reports []lake.Report, dryRun bool) string {
	var expired, compacted, deleted int
	var freed int64
	for _, r := range reports {
		expired += r.Expired
		compacted += len(r.Compacted)
		deleted += len(r.Deleted)
		freed += r.Freed()
	}
	verb := "maintained"
	if dryRun {
		verb = "would maintain"
	}
	return fmt.Sprintf("maintain: %s %d tables: %d snapshots expired, %d partitions compacted, %d files deleted, %s freed",
		verb, len(reports), expired, compacted, deleted, humanize.IBytes(uint64(freed)))
}

type maintainOut struct {
	Tables []lake.Report      `json:"tables"`
	Bronze pipeline.Retention `json:"bronze"`
}

func printRetention(w io.Writer, r pipeline.Retention, dryRun bool) {
	verb := "archived"
	if dryRun {
		verb = "would archive"
	}
	for _, k := range r.Archived {
		fmt.Fprintf(w, "%s %s\n", verb, k)
	}
	fmt.Fprintln(w, retentionLine(r, dryRun))
}

// retentionLine sums bronze retention in one line.
func retentionLine(r pipeline.Retention, dryRun bool) string {
	format := "bronze retention: partitions before %s: %d archived, %d bronze files deleted, %s freed"
	if dryRun {
		format = "bronze retention: partitions before %s: %d to archive, %d bronze files to delete, %s to free"
	}
	return fmt.Sprintf(format, r.Cutoff, len(r.Archived), r.Files, humanize.IBytes(uint64(r.Bytes)))
}

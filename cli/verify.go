package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/lake"
)

func (a *app) verifyCommand() *cobra.Command {
	var tableName string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that every live data file exists with the size and row count its manifest records",
		Long: `Check every live data file of the silver, gold and quarantine tables (or of
--table) against the table's manifests: the file exists, has the recorded size,
and its Parquet footer has the recorded row count. Only footers are read.

Each damaged or missing file is printed with its table; the command then exits 1.
To repair, rewrite the affected dates from bronze (a write never skips a
damaged file):
  medallion backfill --from DATE --to DATE --domain D
A damaged file of a current-state table (users_current, restaurants_current)
cannot be rebuilt from one date's bronze: that backfill fails and says so.

Example:
  medallion verify --table gold.orders_daily`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			out := cmd.OutOrStdout()
			var damaged []lake.Damage
			files := 0
			for _, id := range ids {
				d, n, err := eng.deps.Lake.Verify(ctx, id)
				if err != nil {
					return err
				}
				damaged, files = append(damaged, d...), files+n
			}
			for _, d := range damaged {
				fmt.Fprintln(out, "DAMAGED", d)
			}
			fmt.Fprintf(out, "verify: %d files in %d tables, %d damaged or missing\n", files, len(ids), len(damaged))
			if len(damaged) > 0 {
				return &exitError{code: ExitFailed, err: errSilent}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tableName, "table", "", "verify one table (namespace.table), e.g. gold.orders_daily")
	return cmd
}

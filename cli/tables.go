package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/lake"
)

type tableInfo struct {
	Table     string     `json:"table"`
	Rows      int64      `json:"rows"`
	Files     int        `json:"files"`
	Snapshot  int64      `json:"snapshot_id"`
	Committed time.Time  `json:"committed_at,omitzero"`
	Snapshots int        `json:"snapshots"`
	Location  string     `json:"location"`
	Columns   []tableCol `json:"columns"`
}

type tableCol struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func (a *app) tablesCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "tables",
		Short: "List the silver, gold and quarantine tables: rows, current snapshot, schema",
		Long: `List every Iceberg table with its row count and files (from the catalog's
manifests, without reading data), its current snapshot and when it was
committed, and its columns. --format json gives the full schema.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := tableOrJSON(format); err != nil {
				return err
			}
			ctx := cmd.Context()
			eng, err := a.openEngine(ctx)
			if err != nil {
				return err
			}
			defer eng.close()
			var out []tableInfo
			for _, ns := range lake.Namespaces {
				ids, err := eng.deps.Lake.Tables(ctx, ns)
				if err != nil {
					return err
				}
				for _, id := range ids {
					t, err := eng.deps.Lake.Load(ctx, id)
					if err != nil {
						return err
					}
					files, err := eng.deps.Lake.Files(ctx, id, nil, lake.Snapshot{})
					if err != nil {
						return err
					}
					info := tableInfo{Table: id.String(), Files: len(files), Location: t.Location(), Snapshots: len(t.Metadata().Snapshots())}
					for _, f := range files {
						info.Rows += f.Rows
					}
					if s := t.CurrentSnapshot(); s != nil {
						info.Snapshot, info.Committed = s.SnapshotID, time.UnixMilli(s.TimestampMs).UTC()
					}
					for _, f := range t.Schema().Fields() {
						info.Columns = append(info.Columns, tableCol{f.Name, f.Type.String()})
					}
					out = append(out, info)
				}
			}
			w := cmd.OutOrStdout()
			if format == "json" {
				if out == nil {
					out = []tableInfo{}
				}
				return writeJSON(w, out)
			}
			if len(out) == 0 {
				fmt.Fprintln(w, "No tables yet: `medallion run` creates them.")
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TABLE\tROWS\tFILES\tSNAPSHOT\tCOMMITTED\tCOLUMNS")
			for _, t := range out {
				var cols []string
				for _, c := range t.Columns {
					cols = append(cols, c.Name+" "+c.Type)
				}
				committed := "-"
				if !t.Committed.IsZero() {
					committed = t.Committed.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", t.Table, t.Rows, t.Files, t.Snapshot, committed, truncate(strings.Join(cols, ", "), 90))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "output: table or json")
	return cmd
}

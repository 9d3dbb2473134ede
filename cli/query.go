package cli

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/query"
)

func (a *app) queryCommand() *cobra.Command {
	var format, out, asOf string
	cmd := &cobra.Command{
		Use:   `query "SQL"`,
		Short: "Run SQL over the silver, gold and quarantine tables",
		Long: `Run one SQL statement with DuckDB over the lake. Tables are named
namespace.table: silver.events, gold.orders_daily, quarantine.orders, …
Each table's live files are planned through the Iceberg catalog.

--as-of reads an earlier state: an RFC 3339 time (all tables as they were then)
or a snapshot id (when the statement names one table).

Examples:
  medallion query "SELECT status, sum(orders) FROM gold.orders_daily GROUP BY ALL"
  medallion query --format csv --out orders.csv "SELECT * FROM gold.orders_daily"
  medallion query --as-of 2024-01-16T06:00:00Z "SELECT count(*) FROM silver.events"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(query.Formats, format) {
				return usageError("--format %q: want one of %s", format, strings.Join(query.Formats, ", "))
			}
			if format == "parquet" && out == "" {
				return usageError("--format parquet needs --out FILE")
			}
			stmt := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(args[0]), ";"))
			at, err := parseAsOf(asOf, stmt)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			eng, err := a.openEngine(ctx)
			if err != nil {
				return err
			}
			defer eng.close()
			s, err := query.Open(ctx, eng.deps.Lake, eng.deps.Duck, at)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.Prepare(ctx, stmt); err != nil {
				return usageError("%v", err)
			}
			if format == "parquet" {
				if _, err := s.Conn().ExecContext(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd)", stmt, duck.Literal(out))); err != nil {
					return usageError("%v", err)
				}
				fmt.Fprintf(a.stderr, "wrote %s\n", out)
				return nil
			}
			rows, err := s.Conn().QueryContext(ctx, stmt)
			if err != nil {
				return usageError("%v", err)
			}
			defer rows.Close()
			var w io.Writer = cmd.OutOrStdout()
			if out != "" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			n, err := query.Write(w, rows, format)
			if err != nil {
				return usageError("%v", err)
			}
			if format == "table" && out == "" {
				fmt.Fprintf(a.stderr, "(%d rows)\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "output: table, csv, json or parquet")
	cmd.Flags().StringVarP(&out, "out", "o", "", "write to this file instead of stdout")
	cmd.Flags().StringVar(&asOf, "as-of", "", "read tables as of an RFC 3339 time or a snapshot id")
	return cmd
}

func parseAsOf(s, stmt string) (lake.Snapshot, error) {
	if s == "" {
		return lake.Snapshot{}, nil
	}
	if id, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n := countTables(stmt); n != 1 {
			return lake.Snapshot{}, usageError("--as-of with a snapshot id needs a statement naming exactly one table (it names %d)", n)
		}
		return lake.Snapshot{ID: id}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return lake.Snapshot{}, usageError("--as-of %q: want an RFC 3339 time (2024-01-16T06:00:00Z) or a snapshot id", s)
	}
	return lake.Snapshot{AsOf: t}, nil
}

func countTables(stmt string) int {
	seen := map[string]bool{}
	for _, f := range strings.FieldsFunc(strings.ToLower(stmt), func(r rune) bool {
		return !(r == '.' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'))
	}) {
		for _, ns := range lake.Namespaces {
			if strings.HasPrefix(f, ns+".") {
				seen[f] = true
			}
		}
	}
	return len(seen)
}

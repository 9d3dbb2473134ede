package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/query"
)

func (a *app) queryCommand() *cobra.Command {
	var (
		format, out, asOf, allowFiles string
		interactive                   bool
	)
	cmd := &cobra.Command{
		Use:   `query "SQL"`,
		Short: "Run SQL over the silver, gold and quarantine tables",
		Long: `Run one SQL statement with DuckDB over the lake. Tables are named
namespace.table: silver.events, gold.orders_daily, quarantine.orders, …
Each table's live files are planned through the Iceberg catalog.

--as-of reads an earlier state: an RFC 3339 time (all tables as they were then)
or a snapshot id (when the statement names one table).

Queries are read-only and sandboxed: only SELECT (with DESCRIBE, SHOW,
SUMMARIZE, ...) and EXPLAIN run, over the lake's tables only. There is no
file access (no read_csv or read_parquet on paths, COPY, EXPORT or ATTACH),
no INSTALL or LOAD, and no SET; a refused statement fails saying it is
blocked and why. --allow-files DIR lets statements read and write inside
that one folder.

Examples:
  medallion query "SELECT status, sum(orders) FROM gold.orders_daily GROUP BY ALL"
  medallion query --format csv --out orders.csv "SELECT * FROM gold.orders_daily"
  medallion query --format arrow "SELECT * FROM gold.orders_daily" | python3 -c 'import sys, pyarrow as pa; print(pa.ipc.open_stream(sys.stdin.buffer).read_all())' 
  medallion query --as-of 2024-01-16T06:00:00Z "SELECT count(*) FROM silver.events"`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return a.queryPrompt(cmd, format, asOf, allowFiles, interactive)
			}
			if !slices.Contains(query.Formats, format) {
				return usageError("--format %q: want one of %s", format, strings.Join(query.Formats, ", "))
			}
			if format == "parquet" && out == "" {
				return usageError("--format parquet needs --out FILE")
			}
			if f, ok := cmd.OutOrStdout().(*os.File); ok && format == "arrow" && out == "" && isatty.IsTerminal(f.Fd()) {
				return usageError("--format arrow is binary: give --out FILE or pipe the output")
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
			sb := query.Sandbox{AllowDir: allowFiles}
			if format == "parquet" {
				sb.WritePaths = []string{out}
			}
			s, err := query.OpenLocked(ctx, eng.deps.Lake, eng.deps.Duck, at, sb)
			if err != nil {
				return err
			}
			defer s.Close()
			if format == "parquet" {
				if err := s.Export(ctx, stmt, out); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "wrote %s\n", out)
				return nil
			}
			rows, err := s.Query(ctx, stmt)
			if err != nil {
				return err
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
				return err
			}
			if format == "table" && out == "" {
				fmt.Fprintf(a.stderr, "(%d rows)\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "output: table, csv, json, arrow (an Arrow IPC stream) or parquet")
	cmd.Flags().StringVarP(&out, "out", "o", "", "write to this file instead of stdout")
	cmd.Flags().StringVar(&asOf, "as-of", "", "read tables as of an RFC 3339 time or a snapshot id")
	cmd.Flags().StringVar(&allowFiles, "allow-files", "", "let statements read and write files inside this folder")
	cmd.Flags().BoolVar(&interactive, "interactive", false, "prompt for statements even when stdin is not a terminal")
	_ = cmd.Flags().MarkHidden("interactive")
	return cmd
}

// queryPrompt reads statements from stdin: on a terminal (or with
// --interactive) as a prompt where each statement ends with ';', \d lists
// the tables and \q quits; otherwise the whole input is one statement.
func (a *app) queryPrompt(cmd *cobra.Command, format, asOf, allowFiles string, interactive bool) error {
	if f, ok := a.stdin.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		interactive = true
	}
	if !interactive {
		data, err := io.ReadAll(a.stdin)
		if err != nil {
			return err
		}
		stmt := strings.TrimSpace(string(data))
		if stmt == "" {
			return usageError("no SQL: give it as an argument, on stdin, or run on a terminal for a prompt")
		}
		args := []string{stmt}
		return cmd.RunE(cmd, args)
	}
	if format != "table" && format != "csv" && format != "json" {
		return usageError("--format %q: the prompt prints table, csv or json", format)
	}
	ctx := cmd.Context()
	eng, err := a.openEngine(ctx)
	if err != nil {
		return err
	}
	defer eng.close()
	var at lake.Snapshot
	if asOf != "" {
		t, err := time.Parse(time.RFC3339, asOf)
		if err != nil {
			return usageError("--as-of %q: the prompt takes an RFC 3339 time (a snapshot id needs a statement naming its table)", asOf)
		}
		at.AsOf = t
	}
	s, err := query.OpenLocked(ctx, eng.deps.Lake, eng.deps.Duck, at, query.Sandbox{AllowDir: allowFiles})
	if err != nil {
		return err
	}
	defer s.Close()
	w := cmd.OutOrStdout()
	fmt.Fprintln(w, "medallion query: end statements with ';'. \\d lists tables, \\q quits.")
	sc := bufio.NewScanner(a.stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var buf strings.Builder
	prompt := func() {
		if buf.Len() == 0 {
			fmt.Fprint(w, "medallion> ")
		} else {
			fmt.Fprint(w, "       ...> ")
		}
	}
	prompt()
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case buf.Len() == 0 && (line == "\\q" || line == "quit" || line == "exit"):
			return nil
		case buf.Len() == 0 && line == "\\d":
			ids, err := eng.deps.Lake.AllTables(ctx)
			if err != nil {
				return err
			}
			for _, id := range ids {
				fmt.Fprintln(w, id)
			}
		default:
			buf.WriteString(line + "\n")
			if strings.HasSuffix(line, ";") {
				stmt := strings.TrimSuffix(strings.TrimSpace(buf.String()), ";")
				buf.Reset()
				if err := runPromptStatement(ctx, w, s, stmt, format); err != nil {
					fmt.Fprintln(w, "error:", err)
				}
			}
		}
		prompt()
	}
	fmt.Fprintln(w)
	return sc.Err()
}

func runPromptStatement(ctx context.Context, w io.Writer, s *query.Session, stmt, format string) error {
	rows, err := s.Query(ctx, stmt)
	if err != nil {
		return err
	}
	defer rows.Close()
	n, err := query.Write(w, rows, format)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "(%d rows)\n", n)
	return nil
}

func parseAsOf(s, stmt string) (lake.Snapshot, error) {
	if s == "" {
		return lake.Snapshot{}, nil
	}
	if id, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n := len(query.TablesIn(stmt)); n != 1 {
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

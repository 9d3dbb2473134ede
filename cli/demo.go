package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/query"
)

const demoMarker = ".medallion-demo"

const demoConfig = `# Written by medallion demo: local storage and SQLite, the built-in domains.
storage:
  url: ./lakehouse
meta:
  url: sqlite://./medallion.db
# medallion serve: SQL over the lake for psql and BI tools, on this machine
# only (127.0.0.1:5433). A demo password; use ${ENV_VAR} for real ones.
serve:
  users:
    - name: analyst
      password: demo
`

func (a *app) demoCommand() *cobra.Command {
	var dir string
	o := &generateOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole loop on the embedded defaults, with no servers and no config",
		Long: `Into a fresh folder (./medallion-demo), generate a few days of all four
reference domains with duplicates, malformed rows and late data, run the
pipeline (local storage, SQLite), then land the late files and run again to
show LATE -> DONE, and print some gold results and the status summary.

Afterwards, explore it:
  medallion status --config medallion-demo/medallion.yaml
  medallion query --config medallion-demo/medallion.yaml "SELECT * FROM gold.orders_daily"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.demo(cmd, dir, o) },
	}
	cmd.Flags().StringVar(&dir, "dir", "medallion-demo", "folder to create (an earlier demo folder is replaced)")
	o.flags(cmd)
	cmd.Flags().Lookup("events-per-day").DefValue = "3000"
	o.eventsPerDay = 3000
	return cmd
}

func (a *app) demo(cmd *cobra.Command, dir string, o *generateOptions) error {
	ctx := cmd.Context()
	w := cmd.OutOrStdout()
	start := time.Now()
	if err := freshDemoDir(dir); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "medallion.yaml")
	if err := os.WriteFile(cfgPath, []byte(demoConfig), 0o644); err != nil {
		return err
	}
	a.configPath = cfgPath
	opts, err := o.options(time.Now().UTC())
	if err != nil {
		return err
	}
	eng, err := a.openEngine(ctx)
	if err != nil {
		return err
	}
	defer eng.close()

	heading(w, "1. Generate bronze")
	msgs, err := a.generateBronze(ctx, w, eng.cfg, opts, false)
	if err != nil {
		return err
	}
	heading(w, "2. medallion run")
	sum, err := pipeline.Run(ctx, eng.deps, pipeline.Options{Command: "run"})
	if err != nil {
		return runErr(err)
	}
	printSummary(w, sum, pipeline.Options{})

	heading(w, "3. Late files arrive; medallion run again")
	st, err := generate.WriteBronze(ctx, eng.deps.Bucket, eng.cfg.Domains, msgs, true, 1000, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Wrote %d late bronze files (%d records) into partitions already DONE.\n\n", st.Files, st.Records)
	sum, err = pipeline.Run(ctx, eng.deps, pipeline.Options{Command: "run"})
	if err != nil {
		return runErr(err)
	}
	printSummary(w, sum, pipeline.Options{})

	heading(w, "4. Gold")
	s, err := query.Open(ctx, eng.deps.Lake, eng.deps.Duck, lake.Snapshot{})
	if err != nil {
		return err
	}
	defer s.Close()
	last := opts.Start.AddDays(opts.Days - 1).String()
	for _, q := range []struct{ title, sql string }{
		{"Funnel on " + last + " (gold.funnel_daily)", "SELECT step, step_name, users, conversion_from_first FROM gold.funnel_daily WHERE event_date = DATE '" + last + "' ORDER BY step"},
		{"Revenue by city (gold.revenue_daily)", "SELECT city, sum(purchases) AS purchases, sum(revenue) AS revenue FROM gold.revenue_daily GROUP BY city ORDER BY revenue DESC"},
		{"Orders by latest status (gold.orders_daily)", "SELECT status, sum(orders) AS orders, sum(items) AS items, sum(gross_amount) AS gross_amount FROM gold.orders_daily GROUP BY status ORDER BY orders DESC"},
		{"Quarantined rows by reason", "SELECT reason, count(*) AS rows FROM (SELECT reason FROM quarantine.events UNION ALL SELECT reason FROM quarantine.orders UNION ALL SELECT reason FROM quarantine.restaurants UNION ALL SELECT reason FROM quarantine.users) GROUP BY reason ORDER BY rows DESC, reason"},
	} {
		fmt.Fprintf(w, "%s\n", q.title)
		if err := printQuery(ctx, w, s, q.sql); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}

	heading(w, "5. medallion status")
	if _, err := a.summaryStatus(cmd, eng.cfg, eng.deps.Store, statusOptions{format: "table", limit: 5}); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nDemo finished in %s. Explore it:\n  medallion status --config %s --domain orders\n", time.Since(start).Round(time.Millisecond), cfgPath)
	fmt.Fprintf(w, "  medallion query --config %s 'SELECT * FROM gold.orders_daily LIMIT 5'\n", cfgPath)
	fmt.Fprintf(w, "Or serve it to psql and BI tools (password: demo):\n  medallion serve --config %s\n", cfgPath)
	fmt.Fprintln(w, `  psql "postgres://analyst@localhost:5433/medallion" -c '\dt gold.*'`)
	return nil
}

func heading(w io.Writer, s string) { fmt.Fprintf(w, "\n== %s ==\n\n", s) }

func printQuery(ctx context.Context, w io.Writer, s *query.Session, sql string) error {
	rows, err := s.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	_, err = query.Write(w, rows, "table")
	return err
}

// freshDemoDir empties an earlier demo folder, and refuses any other
// non-empty folder: the demo never deletes data it did not create.
func freshDemoDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
			return usageError("%s exists and is not a demo folder; choose another with --dir", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, demoMarker), []byte("created by medallion demo; the folder is replaced by the next demo\n"), 0o644)
}

package cli

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/serve"
)

func (a *app) serveCommand() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the lake's tables over the PostgreSQL protocol (psql, JDBC, BI tools)",
		Long: `Serve the silver, gold and quarantine tables over the PostgreSQL wire
protocol, so psql, pgx, JDBC and ODBC drivers and BI tools connect unchanged:

  psql "postgres://analyst@localhost:5433/medallion"

Users are configured under serve.users, each with a password (write
${ENV_VAR}) or a SCRAM-SHA-256 verifier as PostgreSQL stores it, and
authenticate with SCRAM-SHA-256. Statements run in the same read-only
sandbox as medallion query: only SELECT and EXPLAIN, over the lake's tables,
with no file access. Each statement reads every table as of its latest
commit, and is cancelled after serve.statement_timeout (5m). SET, BEGIN,
COMMIT and the like are accepted and ignored.

Listens on serve.addr (default 127.0.0.1:5433); stops on SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			eng, err := a.openEngine(ctx)
			if err != nil {
				return err
			}
			defer eng.close()
			cfg := eng.cfg.Serve
			if addr != "" {
				cfg.Addr = addr
			}
			users := map[string]string{}
			for _, u := range cfg.Users {
				users[u.Name] = u.Password
			}
			srv, err := serve.New(ctx, eng.deps.Lake, eng.deps.Duck, serve.Config{Users: users, StatementTimeout: time.Duration(cfg.StatementTimeout), Log: a.log})
			if err != nil {
				return &exitError{code: ExitUsage, err: fmt.Errorf("%s: %w", describeSource(eng.cfg), err)}
			}
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				return fmt.Errorf("serve.addr %s: %w", cfg.Addr, err)
			}
			a.log.Info("serving the lake over the PostgreSQL protocol", "addr", ln.Addr().String(), "users", len(users))
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			select {
			case err := <-done:
				return err
			case <-ctx.Done():
				a.log.Info("stopping")
				if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
					return err
				}
				return nil
			}
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "listen here instead of serve.addr")
	return cmd
}

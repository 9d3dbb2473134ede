package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/internal/httpendpoint"
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
authenticate with SCRAM-SHA-256. With serve.tls.cert_file and key_file,
clients that ask get TLS; clients on other machines without TLS are refused
unless serve.allow_plaintext is set.

Statements run in the same read-only sandbox as medallion query: only SELECT
and EXPLAIN, over the lake's tables, with no file access. Each statement
reads every table as of its latest commit. psql's \dn, \dt and \d and the
information_schema listings of BI tools describe the lake. SET, BEGIN,
COMMIT and the like are accepted and ignored.

Limits: serve.max_connections (64), serve.max_queries running at once (8;
the others wait), serve.statement_timeout (5m). /metrics and /healthz are
served on serve.http_addr (:9465).

Listens on serve.addr (default 127.0.0.1:5433). On SIGINT or SIGTERM it stops
accepting, lets running statements finish for serve.shutdown_timeout (30s),
then cancels them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.serve(cmd.Context(), addr) },
	}
	cmd.Flags().StringVar(&addr, "addr", "", "listen here instead of serve.addr")
	return cmd
}

// serve runs medallion serve until ctx ends, then stops gracefully.
func (a *app) serve(ctx context.Context, addr string) error {
	eng, err := a.openEngine(ctx)
	if err != nil {
		return err
	}
	defer eng.close()
	cfg := eng.cfg.Serve
	if addr != "" {
		cfg.Addr = addr
	}
	sc, err := serveConfig(cfg)
	if err != nil {
		return usageError("%s: %w", describeSource(eng.cfg), err)
	}
	sc.Log = a.log
	srv, err := serve.New(ctx, eng.deps.Lake, eng.deps.Duck, sc)
	if err != nil {
		return usageError("%s: %w", describeSource(eng.cfg), err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("serve.addr %s: %w", cfg.Addr, err)
	}
	if err := srv.Admits(ln); err != nil {
		ln.Close()
		return usageError("%s: %w", describeSource(eng.cfg), err)
	}
	if cfg.HTTPAddr != "" {
		stop, err := httpendpoint.Start("serve.http_addr", cfg.HTTPAddr, srv.Handler())
		if err != nil {
			ln.Close()
			return err
		}
		defer stop() // after Shutdown: /healthz answers 503 meanwhile
	}
	a.log.Info("serving the lake over the PostgreSQL protocol", "addr", ln.Addr().String(), "users", len(sc.Users),
		"tls", sc.TLS != nil, "http", cfg.HTTPAddr)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	grace := time.Duration(cfg.ShutdownTimeout)
	a.log.Info("stopping: running statements may finish", "grace", grace)
	graceCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(graceCtx); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// serveConfig turns the serve section into the server's settings,
// reading the TLS certificate.
func serveConfig(cfg config.Serve) (serve.Config, error) {
	sc := serve.Config{Users: map[string]string{}, StatementTimeout: time.Duration(cfg.StatementTimeout),
		AllowPlaintext: cfg.AllowPlaintext, MaxConnections: cfg.MaxConnections, MaxQueries: cfg.MaxQueries}
	for _, u := range cfg.Users {
		sc.Users[u.Name] = u.Password
	}
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return sc, fmt.Errorf("serve.tls.cert_file %s, key_file %s: %w", cfg.TLS.CertFile, cfg.TLS.KeyFile, err)
		}
		sc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return sc, nil
}

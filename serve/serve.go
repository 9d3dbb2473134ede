// Package serve speaks the PostgreSQL wire protocol over the lake, so that
// psql, pgx, JDBC and ODBC drivers and BI tools query the silver, gold and
// quarantine tables unchanged. Every connection is a query.Session on one
// locked DuckDB: the same read-only sandbox as medallion query, and each
// statement reads each table's current snapshot, so a new commit is seen
// by the next statement without a restart.
package serve

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	wire "github.com/jeroenrinzema/psql-wire"
	"github.com/jeroenrinzema/psql-wire/codes"
	pgerror "github.com/jeroenrinzema/psql-wire/errors"

	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/query"
)

// Config says who may connect.
type Config struct {
	// Users maps each user to a password or a SCRAM-SHA-256 verifier.
	Users map[string]string
	// StatementTimeout cancels a statement running longer (0: never).
	StatementTimeout time.Duration
	Log              *slog.Logger
}

// Server serves the lake's tables.
type Server struct {
	wire    *wire.Server
	lake    *lake.Lake
	db      *duck.DB
	log     *slog.Logger
	timeout time.Duration
}

type sessionKey struct{}

// conn is one client connection's state.
type conn struct {
	sess *query.Session
	cat  catalog
}

// New locks db (query.Lock: it serves queries and nothing else from now
// on) and prepares a server requiring SCRAM-SHA-256 authentication.
func New(ctx context.Context, l *lake.Lake, db *duck.DB, cfg Config) (*Server, error) {
	if len(cfg.Users) == 0 {
		return nil, errors.New("serve.users is empty: configure at least one user")
	}
	creds, err := credentials(cfg.Users)
	if err != nil {
		return nil, err
	}
	if err := query.Lock(ctx, db, query.Sandbox{}); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{lake: l, db: db, log: log, timeout: cfg.StatementTimeout}
	s.wire, err = wire.NewServer(s.parse,
		wire.SessionAuthStrategy(scramAuth(creds)),
		wire.SessionMiddleware(s.open),
		wire.CloseConn(s.close),
		wire.Logger(log),
		wire.Version("15.0 (Medallion)"),
		wire.GlobalParameters(wire.Parameters{
			"standard_conforming_strings": "on", // pgx's simple protocol requires it
			"integer_datetimes":           "on",
			"DateStyle":                   "ISO, MDY",
			"TimeZone":                    "UTC", // DuckDB runs in UTC (duck.Open)
			wire.ParamServerEncoding:      "UTF8",
			wire.ParamClientEncoding:      "UTF8",
			wire.ParamIsSuperuser:         "off",
		}),
	)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Serve accepts connections on l until Close.
func (s *Server) Serve(l net.Listener) error { return s.wire.Serve(l) }

// Close stops accepting connections and closes the open ones.
func (s *Server) Close() error { return s.wire.Close() }

func (s *Server) open(ctx context.Context) (context.Context, error) {
	sess, err := query.Open(ctx, s.lake, s.db, lake.Snapshot{})
	if err != nil {
		return ctx, err
	}
	c := &conn{sess: sess, cat: catalog{conn: sess.Conn(), lake: s.lake}}
	return context.WithValue(ctx, sessionKey{}, c), nil
}

func (s *Server) close(ctx context.Context) error {
	if c, ok := ctx.Value(sessionKey{}).(*conn); ok {
		return c.sess.Close()
	}
	return nil
}

// parse turns one statement into a prepared statement: session commands
// clients send on connecting (SET, BEGIN, ...) are acknowledged and
// ignored; anything else must be one read-only statement over the lake.
func (s *Server) parse(ctx context.Context, q wire.Query) (wire.PreparedStatements, error) {
	stmt := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(q.Query), ";"))
	if tag, ok := ignored(stmt); ok {
		return wire.Prepared(wire.NewStatement(func(ctx context.Context, w wire.DataWriter, _ []wire.Parameter) error {
			return w.Complete(tag)
		})), nil
	}
	c, ok := ctx.Value(sessionKey{}).(*conn)
	if !ok {
		return nil, errors.New("serve: connection without a session")
	}
	catalogQuery := isCatalogQuery(stmt)
	if catalogQuery {
		if err := c.cat.load(ctx); err != nil {
			return nil, err
		}
		stmt = rewriteCatalogQuery(stmt)
	}
	sess := c.sess
	desc, err := sess.Describe(ctx, stmt)
	if err != nil && catalogQuery && !errors.Is(err, query.ErrBlocked) && neverRows.MatchString(stmt) {
		return wire.Prepared(wire.NewStatement(func(ctx context.Context, w wire.DataWriter, _ []wire.Parameter) error {
			return w.Complete("SELECT 0")
		})), nil
	}
	if err != nil {
		return nil, pgErr(err)
	}
	cols := make(wire.Columns, len(desc.Columns))
	for i, c := range desc.Columns {
		cols[i] = wire.Column{Name: c.Name, Oid: oidOf(c.Type), Width: -1}
	}
	params := make([]uint32, len(desc.Params))
	for i, t := range desc.Params {
		params[i] = oidOf(t)
		if i < len(q.ParameterOIDs) && q.ParameterOIDs[i] != 0 {
			params[i] = q.ParameterOIDs[i]
		}
	}
	run := func(ctx context.Context, w wire.DataWriter, args []wire.Parameter) error {
		return s.run(ctx, sess, stmt, cols, params, w, args)
	}
	return wire.Prepared(wire.NewStatement(run, wire.WithColumns(cols), wire.WithParameters(params))), nil
}

// run executes a statement and streams its rows to the client, within
// the statement timeout.
func (s *Server) run(ctx context.Context, sess *query.Session, stmt string, cols wire.Columns, params []uint32, w wire.DataWriter, args []wire.Parameter) (err error) {
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
		defer func() {
			if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				err = pgerror.WithCode(fmt.Errorf("canceling statement due to statement timeout (serve.statement_timeout, %s)", s.timeout), codes.QueryCanceled)
			}
		}()
	}
	values, err := decodeArgs(args, params)
	if err != nil {
		return err
	}
	rows, err := sess.Query(ctx, stmt, values...)
	if err != nil {
		return pgErr(err)
	}
	defer rows.Close()
	return stream(rows, cols, w)
}

// decodeArgs decodes the bound parameters as their types.
func decodeArgs(args []wire.Parameter, params []uint32) ([]any, error) {
	values := make([]any, len(args))
	for i, a := range args {
		v, err := a.Scan(params[i])
		if err != nil {
			return nil, pgErr(fmt.Errorf("parameter $%d: %w", i+1, err))
		}
		values[i] = v
	}
	return values, nil
}

// stream writes rows to the client one by one, then the command tag.
func stream(rows *sql.Rows, cols wire.Columns, w wire.DataWriter) error {
	vals, ptrs, out := make([]any, len(cols)), make([]any, len(cols)), make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return pgErr(err)
		}
		for i, v := range vals {
			out[i] = pgValue(v, cols[i].Oid)
		}
		if err := w.Row(out); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return pgErr(err)
	}
	return w.Complete(fmt.Sprintf("SELECT %d", w.Written()))
}

// ignored recognises the session commands a read-only server acknowledges
// without effect, and returns their command tag.
func ignored(stmt string) (string, bool) {
	word := strings.ToUpper(strings.Fields(stmt + " x")[0])
	switch word {
	case "SET", "RESET", "DISCARD", "DEALLOCATE":
		return word, true
	case "BEGIN", "START":
		return "BEGIN", true
	case "COMMIT", "END":
		return "COMMIT", true
	case "ROLLBACK", "ABORT":
		return "ROLLBACK", true
	}
	return "", false
}

// pgErr gives a refused statement SQLSTATE 42501 (insufficient privilege)
// and any other failure 42000 (syntax error or access rule violation).
func pgErr(err error) error {
	if errors.Is(err, query.ErrBlocked) {
		return pgerror.WithCode(err, codes.InsufficientPrivilege)
	}
	return pgerror.WithCode(err, codes.SyntaxErrorOrAccessRuleViolation)
}

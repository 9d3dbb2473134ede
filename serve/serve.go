// Package serve speaks the PostgreSQL wire protocol over the lake, so that
// psql, pgx, JDBC and ODBC drivers and BI tools query the silver, gold and
// quarantine tables unchanged. Every connection is a query.Session on one
// locked DuckDB: the same read-only sandbox as medallion query, and each
// statement reads each table's current snapshot, so a new commit is seen
// by the next statement without a restart.
package serve

import (
	"cmp"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	wire "github.com/jeroenrinzema/psql-wire"
	"github.com/jeroenrinzema/psql-wire/codes"
	pgerror "github.com/jeroenrinzema/psql-wire/errors"

	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/query"
)

// Config says who may connect, and how much they may run.
type Config struct {
	// Users maps each user to a password or a SCRAM-SHA-256 verifier.
	Users map[string]string
	// StatementTimeout cancels a statement running longer (0: never).
	StatementTimeout time.Duration
	// TLS, when set, is offered to every client that asks for it.
	TLS *tls.Config
	// AllowPlaintext admits clients on other machines without TLS.
	AllowPlaintext bool
	// MaxConnections refuses clients beyond it; MaxQueries is how many
	// statements run at once (more wait). Zero means 64 and 8.
	MaxConnections, MaxQueries int
	// EvictEvery is how often staged files no table reads any more are
	// removed (query.Evict); zero means 10 minutes.
	EvictEvery time.Duration
	Log        *slog.Logger
}

// Server serves the lake's tables.
type Server struct {
	wire     *wire.Server
	lake     *lake.Lake
	db       *duck.DB
	log      *slog.Logger
	cfg      Config
	ln       *listener
	metrics  *metrics
	slots    chan struct{} // one per statement allowed to run
	stopping atomic.Bool
	forced   context.Context // cancelled when Shutdown stops waiting
	force    context.CancelFunc
	mu       sync.Mutex
	active   int           // statements running or waiting
	idle     chan struct{} // closed when active drops to 0 during Shutdown
	catalog  *lakeCatalog  // the lake's tables for the sessions' catalogs
	// gate is held shared by every statement (Describe and run, which stage
	// files) and exclusively by eviction.
	gate sync.RWMutex
}

type sessionKey struct{}

// maxMessage is the largest statement (with its parameters) a client may
// send.
const maxMessage = 1 << 20

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
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.MaxConnections = cmp.Or(cfg.MaxConnections, 64)
	cfg.MaxQueries = cmp.Or(cfg.MaxQueries, 8)
	cfg.EvictEvery = cmp.Or(cfg.EvictEvery, 10*time.Minute)
	s := &Server{lake: l, db: db, log: cfg.Log, cfg: cfg, ln: &listener{max: cfg.MaxConnections},
		slots: make(chan struct{}, cfg.MaxQueries), catalog: &lakeCatalog{lake: l}}
	s.metrics = newMetrics(s.ln)
	s.forced, s.force = context.WithCancel(context.Background())
	opts := []wire.OptionFn{
		wire.SessionAuthStrategy(s.authenticate(creds)),
		wire.SessionMiddleware(s.open),
		wire.CloseConn(s.close),
		wire.Logger(cfg.Log),
		// psql-wire reads each connection through a buffer this size, allocated
		// up front, which is also the largest message a client may send: its
		// 16 MiB default made 32 connections hold 512 MiB.
		wire.MessageBufferSize(maxMessage),
		wire.Version("15.0"), // psql-wire v0.20.0 sends server_version 150000 whatever this says
		wire.GlobalParameters(wire.Parameters{
			"standard_conforming_strings": settings["standard_conforming_strings"], // pgx's simple protocol requires it
			"integer_datetimes":           settings["integer_datetimes"],
			"DateStyle":                   settings["datestyle"],
			"TimeZone":                    settings["timezone"], // DuckDB runs in UTC (duck.Open)
			wire.ParamServerEncoding:      settings["server_encoding"],
			wire.ParamClientEncoding:      settings["client_encoding"],
			wire.ParamIsSuperuser:         settings["is_superuser"],
		}),
	}
	if cfg.TLS != nil {
		opts = append(opts, wire.TLSConfig(cfg.TLS))
	}
	s.wire, err = wire.NewServer(s.parse, opts...)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Serve accepts connections on l until Shutdown or Close. A listener
// other machines reach needs TLS, unless plaintext is allowed.
func (s *Server) Serve(l net.Listener) error {
	if err := s.Admits(l); err != nil {
		l.Close()
		return err
	}
	s.ln.Listener = l
	go s.evictLoop()
	return s.wire.Serve(s.ln)
}

// Admits refuses a listener other machines reach when there is no TLS
// and plaintext is not allowed.
func (s *Server) Admits(l net.Listener) error {
	if a, ok := l.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() && s.cfg.TLS == nil && !s.cfg.AllowPlaintext {
		return fmt.Errorf("serve.addr %s is reachable from other machines: set serve.tls.cert_file and serve.tls.key_file, or serve.allow_plaintext: true", l.Addr())
	}
	return nil
}

// evictLoop removes staged files no table reads any more, every
// EvictEvery, at a moment no statement runs. It never waits for one: a
// portal a client left suspended holds its statement open while the same
// connection runs others, so waiting could stall them all.
func (s *Server) evictLoop() {
	t := time.NewTicker(s.cfg.EvictEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.forced.Done():
			return
		case <-t.C:
		}
		ran, err := s.evict()
		if err != nil {
			s.log.Warn("could not remove staged files", "error", err)
		}
		switch {
		case ran:
			last = time.Now()
		case time.Since(last) > time.Hour:
			s.log.Warn("no moment without a running statement to remove staged files in", "since", last.Format(time.RFC3339))
		}
	}
}

// evict removes the staged files no table reads any more, unless
// statements are running; ran says whether it did.
func (s *Server) evict() (ran bool, err error) {
	dir, err := s.db.TablesDir()
	if err != nil {
		return false, err
	}
	staged, err := query.Staged(dir)
	if err != nil || len(staged) == 0 {
		return err == nil, err
	}
	live, err := query.Live(s.forced, s.lake)
	if err != nil {
		return false, err
	}
	if !s.gate.TryLock() {
		return false, nil
	}
	files, bytes, err := query.Evict(staged, live)
	s.gate.Unlock()
	if files > 0 {
		s.log.Info("removed staged files no table reads any more", "files", files, "bytes", bytes)
	}
	return true, err
}

// Close stops at once: no new connection, and the open ones closed.
func (s *Server) Close() error {
	s.stopping.Store(true)
	return s.stop()
}

// Shutdown stops accepting connections and new statements, lets the
// running ones go on until they finish or ctx ends (then cancels them),
// and closes every connection.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	s.ln.Close() // no new connection
	if !s.waitIdle(ctx) {
		s.log.Warn("statements still running at the end of the grace period are cancelled", "running", s.running())
	}
	return s.stop()
}

// stop cancels running statements and gives them a moment to tell their
// clients, waits until the connections have been quiet for settleTime;
// then it closes the protocol server, which waits for the
// commands in progress to send their last messages (closing the
// connections first cut a finished statement's CommandComplete), and the
// connections. A client that stops reading would hold that wait: once no
// connection has sent anything for stallTimeout, they are closed under
// it. (A fixed wait cut slow clients that were still reading.)
func (s *Server) stop() error {
	s.force()
	s.ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), stallTimeout)
	defer cancel()
	s.waitIdle(ctx)
	s.ln.quiet(ctx, settleTime)
	closed := make(chan error, 1)
	go func() { closed <- s.wire.Close() }()
	tick := time.NewTicker(stallTimeout / 10)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case err := <-closed:
			s.closeConns()
			return err
		case <-tick.C:
			if last := time.Unix(0, s.ln.wrote.Load()); time.Since(start) > stallTimeout && time.Since(last) > stallTimeout {
				s.closeConns()
				return <-closed
			}
		}
	}
}

// stallTimeout is how long a stopping server waits for a client that has
// stopped reading.
const stallTimeout = 5 * time.Second

// settleTime is how long no connection may have sent anything before a
// stopping server closes the protocol server, once no statement runs: a
// client's Sync that arrived with its last Execute is still to be answered
// with ReadyForQuery, and psql-wire drops messages it reads after Close
// (the client then saw its finished statement fail with an unexpected EOF).
const settleTime = 250 * time.Millisecond

// waitIdle waits until no statement runs or waits, or ctx ends; once the
// server is stopping, no new statement starts.
func (s *Server) waitIdle(ctx context.Context) bool {
	s.mu.Lock()
	if s.active == 0 {
		s.mu.Unlock()
		return true
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) closeConns() {
	s.ln.conns.Range(func(_, c any) bool {
		c.(*clientConn).Close()
		return true
	})
}

func (s *Server) running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// begin counts a statement in, unless the server is stopping.
func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping.Load() {
		return false
	}
	s.active++
	return true
}

func (s *Server) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.active == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

func (s *Server) open(ctx context.Context) (context.Context, error) {
	sess, err := query.Open(ctx, s.lake, s.db, lake.Snapshot{})
	if err != nil {
		return ctx, err
	}
	c := &conn{sess: sess, cat: catalog{conn: sess.Conn(), src: s.catalog}}
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
	if fixed, ok := answered(stmt); ok {
		return fixed, nil
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
	s.gate.RLock()
	desc, err := c.sess.Describe(ctx, stmt)
	s.gate.RUnlock()
	if err != nil && catalogQuery && !errors.Is(err, query.ErrBlocked) && neverRows.MatchString(stmt) {
		s.log.Debug("a catalog statement about relations the lake has no rows for answers none", "error", err)
		return completes("SELECT 0"), nil
	}
	if err != nil {
		return nil, pgErr(err)
	}
	cols := make(wire.Columns, len(desc.Columns))
	for i, c := range desc.Columns {
		cols[i] = wire.Column{Name: c.Name, Oid: columnOID(c), Width: -1}
	}
	params := make([]uint32, len(desc.Params))
	for i, t := range desc.Params {
		params[i] = oidOf(t)
		if i < len(q.ParameterOIDs) && q.ParameterOIDs[i] != 0 {
			params[i] = q.ParameterOIDs[i]
		}
	}
	run := func(ctx context.Context, w wire.DataWriter, args []wire.Parameter) error {
		return s.run(ctx, c.sess, stmt, cols, params, w, args)
	}
	return wire.Prepared(wire.NewStatement(run, wire.WithColumns(cols), wire.WithParameters(params))), nil
}

// answered gives the statements serve answers itself: session commands
// acknowledged without effect, and SHOW of the settings drivers read.
func answered(stmt string) (wire.PreparedStatements, bool) {
	if tag, ok := ignored(stmt); ok {
		return completes(tag), true
	}
	name, value, ok := showSetting(stmt)
	if !ok {
		return nil, false
	}
	cols := wire.Columns{{Name: name, Oid: pgtype.TextOID, Width: -1}}
	return wire.Prepared(wire.NewStatement(func(ctx context.Context, w wire.DataWriter, _ []wire.Parameter) error {
		if err := w.Row([]any{value}); err != nil {
			return err
		}
		return w.Complete("SHOW")
	}, wire.WithColumns(cols))), true
}

// completes is a statement that returns no row, only its command tag.
func completes(tag string) wire.PreparedStatements {
	return wire.Prepared(wire.NewStatement(func(ctx context.Context, w wire.DataWriter, _ []wire.Parameter) error {
		return w.Complete(tag)
	}))
}

// run executes a statement and streams its rows to the client, within
// the statement timeout, once one of the max_queries slots is free.
func (s *Server) run(ctx context.Context, sess *query.Session, stmt string, cols wire.Columns, params []uint32, w wire.DataWriter, args []wire.Parameter) (err error) {
	if !s.begin() {
		return pgerror.WithCode(errors.New("terminating: the server is shutting down"), codes.AdminShutdown)
	}
	defer s.end()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.forced, cancel)()
	if s.cfg.StatementTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, s.cfg.StatementTimeout)
		defer cancel()
	}
	began := time.Now()
	defer func() { err = s.account(ctx, began, err) }()
	s.metrics.waiting.Inc()
	select {
	case s.slots <- struct{}{}:
		s.metrics.waiting.Dec()
	case <-ctx.Done():
		s.metrics.waiting.Dec()
		return ctx.Err()
	}
	defer func() { <-s.slots }()
	s.metrics.running.Inc()
	defer s.metrics.running.Dec()
	values, err := decodeArgs(args, params)
	if err != nil {
		return err
	}
	s.gate.RLock()
	defer s.gate.RUnlock()
	rows, err := sess.Query(ctx, stmt, values...)
	if err != nil {
		return pgErr(err)
	}
	defer rows.Close()
	return stream(rows, cols, w)
}

// account records a statement's outcome and duration, and turns a
// timeout into SQLSTATE 57014.
func (s *Server) account(ctx context.Context, began time.Time, err error) error {
	s.metrics.duration.Observe(time.Since(began).Seconds())
	outcome := outcomeOK
	switch {
	case err == nil:
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		outcome = outcomeTimeout
		err = pgerror.WithCode(fmt.Errorf("canceling statement due to statement timeout (serve.statement_timeout, %s)", s.cfg.StatementTimeout), codes.QueryCanceled)
	case s.forced.Err() != nil:
		outcome = outcomeCanceled
		err = pgerror.WithCode(errors.New("terminating: the server shut down before the statement finished"), codes.AdminShutdown)
	case ctx.Err() != nil:
		outcome = outcomeCanceled
	case errors.Is(err, query.ErrBlocked):
		outcome = outcomeBlocked
	default:
		outcome = outcomeError
	}
	s.metrics.queries.WithLabelValues(outcome).Inc()
	return err
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

// batchRows is how many rows go to the client in one write: one write a
// row made streaming a syscall-bound 250k rows a second.
const batchRows = 256

// stream writes rows to the client in batches of batchRows (never the
// whole result at once), then the command tag.
func stream(rows *sql.Rows, cols wire.Columns, w wire.DataWriter) error {
	vals, ptrs := make([]any, len(cols)), make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	batch := make([][]any, 0, batchRows)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return pgErr(err)
		}
		out := make([]any, len(cols))
		for i, v := range vals {
			out[i] = pgValue(v, cols[i].Oid)
		}
		if batch = append(batch, out); len(batch) == batchRows {
			if err := wire.WriteRows(w, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return pgErr(err)
	}
	if err := wire.WriteRows(w, batch); err != nil {
		return err
	}
	return w.Complete(fmt.Sprintf("SELECT %d", w.Written()))
}

// settings answer SHOW for the PostgreSQL settings drivers read on
// connecting, and give the parameters sent at startup their values; any
// other SHOW goes to DuckDB (SHOW TABLES, SHOW gold.t).
var settings = map[string]string{
	"transaction_isolation": "read committed", "default_transaction_isolation": "read committed",
	"transaction_read_only": "on", "default_transaction_read_only": "on",
	"standard_conforming_strings": "on", "server_version": "15.0", "server_version_num": "150000",
	"server_encoding": "UTF8", "client_encoding": "UTF8", "datestyle": "ISO, MDY", "timezone": "UTC",
	"integer_datetimes": "on", "max_identifier_length": "63", "search_path": "gold, silver, quarantine",
	"lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8", "application_name": "", "extra_float_digits": "3",
	"max_index_keys": "32", "is_superuser": "off",
}

// showSetting recognises SHOW of one of settings (SHOW TRANSACTION
// ISOLATION LEVEL included).
func showSetting(stmt string) (name, value string, ok bool) {
	fields := strings.Fields(strings.ToLower(stmt))
	if len(fields) < 2 || fields[0] != "show" {
		return "", "", false
	}
	name = strings.Trim(strings.Join(fields[1:], "_"), `"`)
	if name == "transaction_isolation_level" {
		name = "transaction_isolation"
	}
	value, ok = settings[name]
	return name, value, ok
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

package serve_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/medallionlake/medallion/serve"
)

// selfSigned is a throwaway server certificate.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "medallion"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// outsideIP is an address of this machine's that is not loopback, which
// clients here can reach the server at as if from another machine.
func outsideIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no address besides loopback")
	return ""
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// TestServeTLS: with a certificate, a client from another machine gets
// TLS when it asks and is refused (28000) when it does not; a loopback
// client may use either; psql connects with sslmode=require. Without a
// certificate, a listener other machines reach is refused unless
// plaintext is allowed.
func TestServeTLS(t *testing.T) {
	ip := outsideIP(t)
	s := startWith(t, 1, func(c *serve.Config) { c.TLS = selfSigned(t) }, "0.0.0.0:0")
	_, port, _ := net.SplitHostPort(s.addr)
	outside, local := net.JoinHostPort(ip, port), net.JoinHostPort("127.0.0.1", port)
	ctx := context.Background()

	conn, err := dial(outside, "analyst", "s3cret", "require")
	if err != nil {
		t.Fatalf("TLS from outside: %v", err)
	}
	if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
		t.Errorf("sslmode=require ran over %T", conn.PgConn().Conn())
	}
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM gold.orders_daily").Scan(&n); err != nil || n == 0 {
		t.Errorf("over TLS: %d %v", n, err)
	}
	conn.Close(ctx)
	if _, err := dial(outside, "analyst", "s3cret", "disable"); pgCode(err) != "28000" || !strings.Contains(err.Error(), "without TLS") {
		t.Errorf("plaintext from outside: %v", err)
	}
	for _, mode := range []string{"disable", "require"} {
		c, err := dial(local, "analyst", "s3cret", mode)
		if err != nil {
			t.Errorf("loopback, sslmode=%s: %v", mode, err)
			continue
		}
		c.Close(ctx)
	}
	for mode, ok := range map[string]bool{"require": true, "disable": false} {
		cmd := exec.Command("psql", "-X", "-At", "-h", ip, "-p", port, "-U", "analyst", "-d", "medallion", "-c", "SELECT ssl FROM (SELECT true AS ssl)")
		cmd.Env = append(os.Environ(), "PGPASSWORD=s3cret", "PGSSLMODE="+mode)
		out, err := cmd.CombinedOutput()
		if (err == nil) != ok || (!ok && !strings.Contains(string(out), "without TLS")) {
			t.Errorf("psql sslmode=%s from outside: %v\n%s", mode, err, out)
		}
	}

	// No certificate: a listener reachable from outside is refused, unless
	// plaintext is allowed.
	plain := startWith(t, 1, nil, "127.0.0.1:0")
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.srv.Serve(ln); err == nil || !strings.Contains(err.Error(), "serve.allow_plaintext") {
		t.Errorf("a reachable listener without TLS: %v", err)
	}
	open := startWith(t, 1, func(c *serve.Config) { c.AllowPlaintext = true }, "0.0.0.0:0")
	_, port, _ = net.SplitHostPort(open.addr)
	c, err := dial(net.JoinHostPort(ip, port), "analyst", "s3cret", "disable")
	if err != nil {
		t.Fatalf("plaintext allowed: %v", err)
	}
	c.Close(ctx)
}

// metric reads one series of the server's /metrics.
func metric(t *testing.T, srv *serve.Server, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return seriesValue(t, rec.Body.String(), series)
}

// seriesValue reads one series from a Prometheus text exposition.
func seriesValue(t testing.TB, exposition, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return 0
}

// eventually polls cond for up to 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestServeMaxConnections: a client beyond serve.max_connections is
// refused with SQLSTATE 53300, and one slot freed admits the next.
func TestServeMaxConnections(t *testing.T) {
	s := startWith(t, 1, func(c *serve.Config) { c.MaxConnections = 2 }, "127.0.0.1:0")
	ctx := context.Background()
	var conns []*pgx.Conn
	for range 2 {
		c := analyst(t, s.addr)
		conns = append(conns, c)
	}
	if _, err := connect(s.addr, "analyst", "s3cret"); pgCode(err) != "53300" {
		t.Fatalf("a third client: %v", err)
	}
	if got := metric(t, s.srv, `medallion_serve_connections_refused_total{reason="max_connections"}`); got != 1 {
		t.Errorf("refusals counted: %v", got)
	}
	conns[0].Close(ctx)
	eventually(t, "the closed connection to be counted out", func() bool { return metric(t, s.srv, "medallion_serve_connections") == 1 })
	c, err := connect(s.addr, "analyst", "s3cret")
	if err != nil {
		t.Fatalf("after one closed: %v", err)
	}
	c.Close(ctx)
	conns[1].Close(ctx)
}

// endless runs until cancelled.
const endless = "SELECT count(*) FROM range(1000000000000) t(i) WHERE i % 7 = 3"

// TestServeMaxQueriesAndShutdown: with serve.max_queries 1 a second
// statement waits while one runs; Shutdown refuses new statements, lets
// the running ones go on through the grace period, then cancels them
// (57P01); /healthz answers 503 once stopping, and /metrics counts each
// outcome.
func TestServeMaxQueriesAndShutdown(t *testing.T) {
	s := startWith(t, 1, func(c *serve.Config) { c.MaxQueries = 1 }, "127.0.0.1:0")
	ctx := context.Background()
	var conns [3]*pgx.Conn
	for i := range conns {
		c := analyst(t, s.addr)
		conns[i] = c
	}
	var n int64
	if err := conns[2].QueryRow(ctx, "SELECT count(*) FROM gold.orders_daily").Scan(&n); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { errs <- conns[0].QueryRow(ctx, endless).Scan(&n) }()
	eventually(t, "the endless statement to run", func() bool { return metric(t, s.srv, "medallion_serve_queries_running") == 1 })
	go func() { errs <- conns[1].QueryRow(ctx, "SELECT count(*) FROM gold.orders_daily").Scan(&n) }()
	eventually(t, "the second statement to wait", func() bool { return metric(t, s.srv, "medallion_serve_queries_waiting") == 1 })

	grace, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	stopped := make(chan error, 1)
	began := time.Now()
	go func() { stopped <- s.srv.Shutdown(grace) }()
	eventually(t, "/healthz to fail", func() bool {
		rec := httptest.NewRecorder()
		s.srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		return rec.Code == http.StatusServiceUnavailable
	})
	if err := conns[2].QueryRow(ctx, "SELECT 1").Scan(&n); pgCode(err) != "57P01" {
		t.Errorf("a new statement while stopping: %v", err)
	}
	select {
	case <-stopped:
		t.Fatal("Shutdown returned while statements were running, before its grace period ended")
	case <-time.After(500 * time.Millisecond):
	}
	for range 2 {
		if err := <-errs; pgCode(err) != "57P01" {
			t.Errorf("a statement past the grace period: %v", err)
		}
	}
	<-stopped
	if took := time.Since(began); took < time.Second || took > 20*time.Second {
		t.Errorf("Shutdown took %s with a 1.5 s grace period", took)
	}
	if got := metric(t, s.srv, `medallion_serve_queries_total{outcome="canceled"}`); got != 2 {
		t.Errorf("canceled statements counted: %v", got)
	}
	if got := metric(t, s.srv, `medallion_serve_queries_total{outcome="ok"}`); got != 1 {
		t.Errorf("ok statements counted: %v", got)
	}
}

// TestServeShutdownLetsStatementsFinish: a statement running when
// Shutdown starts completes, with its rows, inside the grace period.
func TestServeShutdownLetsStatementsFinish(t *testing.T) {
	s := startWith(t, 1, nil, "127.0.0.1:0")
	ctx := context.Background()
	conn := analyst(t, s.addr)
	rows, err := conn.Query(ctx, "SELECT i FROM range(200000) t(i)")
	if err != nil {
		t.Fatal(err)
	}
	// The statement is running: its first rows are here, the rest are
	// still to be sent.
	if !rows.Next() {
		t.Fatal(rows.Err())
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.srv.Shutdown(context.Background()) }()
	count := int64(1)
	for rows.Next() {
		count++
	}
	if err := rows.Err(); err != nil || count != 200000 {
		t.Fatalf("a statement running at Shutdown: %d rows, %v", count, err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return once the statement finished")
	}
}

// TestServeShutdownClosesAStalledClient: a client that stops reading in
// the middle of a large result cannot hold a stopping server: once nothing
// has been sent for five seconds after the grace period, its connection is
// closed, and the client sees the result cut short.
func TestServeShutdownClosesAStalledClient(t *testing.T) {
	s := startWith(t, 1, nil, "127.0.0.1:0")
	ctx := context.Background()
	conn := analyst(t, s.addr)
	rows, err := conn.Query(ctx, "SELECT i FROM range(20000000) t(i)")
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal(rows.Err())
	}
	grace, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- s.srv.Shutdown(grace) }()
	select {
	case <-stopped:
	case <-time.After(60 * time.Second):
		t.Fatal("a client that stopped reading held Shutdown")
	}
	count := int64(1)
	for rows.Next() {
		count++
	}
	if rows.Err() == nil || count == 20000000 {
		t.Fatalf("the stalled client read %d rows, %v: the stop should have cut it", count, rows.Err())
	}
}

// TestServeLargeStatement: a statement under the 1 MiB message limit runs;
// one over it is refused, and the server goes on serving.
func TestServeLargeStatement(t *testing.T) {
	addr, _ := start(t, 0)
	ctx := context.Background()
	conn := analyst(t, addr)
	var n int64
	if err := conn.QueryRow(ctx, "SELECT length('"+strings.Repeat("x", 900<<10)+"')").Scan(&n); err != nil || n != 900<<10 {
		t.Fatalf("a 900 KiB statement: %d %v", n, err)
	}
	err := conn.QueryRow(ctx, "SELECT length('"+strings.Repeat("x", 2<<20)+"')").Scan(&n)
	if pgCode(err) != "54000" || !strings.Contains(err.Error(), "bigger than maximum allowed message size 1048576") {
		t.Fatalf("a 2 MiB statement: %v", err)
	}
	other := analyst(t, addr)
	if err := other.QueryRow(ctx, "SELECT count(*) FROM gold.orders_daily").Scan(&n); err != nil || n == 0 {
		t.Fatalf("after a refused statement: %d %v", n, err)
	}
}

// TestServeShutdownAnswersALateSync: a client's Sync that reaches the
// server after its statement finished and Shutdown began is still
// answered with ReadyForQuery, so the client sees the statement succeed
// (psql-wire drops what it reads once closed; a client whose Sync came
// with its Execute hit this as an unexpected EOF after every row).
func TestServeShutdownAnswersALateSync(t *testing.T) {
	s := startWith(t, 1, nil, "127.0.0.1:0")
	ctx := context.Background()
	hj, err := analyst(t, s.addr).PgConn().Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Conn.Close()
	fe := hj.Frontend
	fe.SendParse(&pgproto3.Parse{Query: "SELECT 42"})
	fe.SendBind(&pgproto3.Bind{})
	fe.SendExecute(&pgproto3.Execute{})
	fe.Send(&pgproto3.Flush{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		_, done = msg.(*pgproto3.CommandComplete)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.srv.Shutdown(ctx) }()
	time.Sleep(20 * time.Millisecond)
	fe.SendSync(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	hj.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	msg, err := fe.Receive()
	if _, ok := msg.(*pgproto3.ReadyForQuery); !ok || err != nil {
		t.Fatalf("the Sync after Shutdown began: %T %v, want ReadyForQuery", msg, err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

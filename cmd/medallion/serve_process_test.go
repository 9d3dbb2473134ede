package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medallionlake/medallion/internal/testenv"
)

// TestServeProcess: `medallion serve` on the demo's project answers psql
// with the demo's user, serves /healthz and /metrics (which promtool
// accepts), and on SIGTERM lets a statement that is streaming its rows
// finish, refuses new connections meanwhile, and exits 0.
func TestServeProcess(t *testing.T) {
	dir := t.TempDir()
	bin := testenv.Build(t, "cmd/medallion")
	demo := filepath.Join(dir, "demo")
	if out, err := exec.Command(bin, "demo", "--dir", demo, "--days", "1", "--events-per-day", "200").CombinedOutput(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	addr, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	cmd := exec.Command(bin, "serve", "--config", filepath.Join(demo, "medallion.yaml"), "--addr", addr)
	cmd.Env = append(os.Environ(), "MEDALLION_SERVE_HTTP_ADDR="+httpAddr, "MEDALLION_SERVE_SHUTDOWN_TIMEOUT=20s")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	healthy := false
	for end := time.Now().Add(60 * time.Second); !healthy && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + httpAddr + "/healthz"); err == nil {
			healthy = resp.StatusCode == http.StatusOK
			resp.Body.Close()
		}
	}
	if !healthy {
		t.Fatalf("/healthz never answered 200\n%s", log.String())
	}
	host, port, _ := net.SplitHostPort(addr)
	psql := exec.Command("psql", "-X", "-At", "-h", host, "-p", port, "-U", "analyst", "-d", "medallion", "-c", "SELECT count(*) > 0 FROM gold.orders_daily")
	psql.Env = append(os.Environ(), "PGPASSWORD=demo", "PGSSLMODE=disable")
	if out, err := psql.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "t" {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	must(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `medallion_serve_queries_total{outcome="ok"} 1`) {
		t.Errorf("/metrics does not count the psql query:\n%s", metrics)
	}
	lint := exec.Command("promtool", "check", "metrics")
	lint.Stdin = bytes.NewReader(metrics)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, "postgres://analyst:demo@"+addr+"/medallion?sslmode=disable")
	must(t, err)
	defer conn.Close(ctx)
	const n = 2_000_000
	rows, err := conn.Query(ctx, "SELECT i FROM range(2000000) t(i)")
	must(t, err)
	if !rows.Next() {
		t.Fatal(rows.Err())
	}
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	termed := time.Now()
	refused := false
	for end := time.Now().Add(10 * time.Second); !refused && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		c, err := pgx.Connect(ctx, "postgres://analyst:demo@"+addr+"/medallion?sslmode=disable&connect_timeout=2")
		if err != nil {
			refused = true
			continue
		}
		c.Close(ctx)
	}
	got := 1
	for rows.Next() {
		got++
	}
	if err := rows.Err(); err != nil || got != n {
		t.Fatalf("the statement streaming at SIGTERM: %d of %d rows, %v", got, n, err)
	}
	if !refused {
		t.Error("new connections were still accepted after SIGTERM")
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v\n%s", err, log.String())
		}
		t.Logf("%d rows streamed, and exited %s after SIGTERM", n, time.Since(termed).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not exit after SIGTERM\n%s", log.String())
	}
}

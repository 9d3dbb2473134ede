package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartPostgresCluster starts a PostgreSQL server of its own for the
// test (initdb and pg_ctl of the installed PostgreSQL, trust auth, on a free
// loopback port, in a temporary folder) with the given settings (for
// example wal_level: logical, which the shared server does not have), and
// returns the URL of its postgres database. The server is stopped and its
// folder removed when the test ends. As root, the server runs as the
// postgres user, since PostgreSQL refuses to run as root.
func StartPostgresCluster(t testing.TB, settings map[string]string) string {
	t.Helper()
	bin := postgresBin(t)
	dir, err := os.MkdirTemp("", "medallion-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	run := asPostgresUser(t, dir)
	data := filepath.Join(dir, "data")
	if out, err := run(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("testenv: initdb: %v\n%s", err, out)
	}
	port := strings.TrimPrefix(FreeAddr(t), "127.0.0.1:")
	opts := []string{"-c port=" + port, "-c listen_addresses=127.0.0.1", "-c unix_socket_directories=" + dir, "-c fsync=off"}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		opts = append(opts, fmt.Sprintf("-c %s=%s", k, settings[k]))
	}
	logFile := filepath.Join(dir, "server.log")
	if out, err := run(filepath.Join(bin, "pg_ctl"), "-D", data, "-l", logFile, "-w", "-t", "60", "-o", strings.Join(opts, " "), "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("testenv: pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	t.Cleanup(func() {
		_ = run(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop").Run()
	})
	url := "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("testenv: the PostgreSQL cluster at %s: %v", url, err)
	}
	t.Logf("testenv: PostgreSQL cluster of its own at %s (%v)", url, settings)
	return url
}

// postgresBin is the folder of the installed PostgreSQL's server programs.
func postgresBin(t testing.TB) string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	if len(dirs) == 0 {
		t.Fatal("testenv: no PostgreSQL server programs (initdb, pg_ctl): install postgresql")
	}
	return dirs[len(dirs)-1]
}

// asPostgresUser returns a command maker that runs as the postgres user
// when the test runs as root, after handing dir to that user.
func asPostgresUser(t testing.TB, dir string) func(name string, args ...string) *exec.Cmd {
	if os.Geteuid() != 0 {
		return exec.Command
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("testenv: running as root needs a postgres user to run PostgreSQL as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return func(name string, args ...string) *exec.Cmd {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
}

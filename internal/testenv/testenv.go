// Package testenv starts and connects the real services Medallion's tests
// run against: an S3-compatible server (versitygw, pinned in
// .ci/tools/go.mod) on a loopback port, and the local PostgreSQL. Neither is
// ever skipped: a test that cannot reach them fails and says how to fix it.
package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/medallionlake/medallion/storage/s3"
)

// RepoRoot is the folder holding the project's go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(data), "module github.com/medallionlake/medallion\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: cannot find the medallion go.mod above the working folder")
		}
		dir = parent
	}
}

// RandomName is a short random lower-case identifier with a prefix, for
// schemas and buckets.
func RandomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

var buildOnce sync.Once

// versitygwBinary returns the pinned versitygw, building it into bin/ on
// first use (make test builds it beforehand; this keeps `go test ./...`
// working on its own).
func versitygwBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MEDALLION_VERSITYGW"); p != "" {
		return p
	}
	root := RepoRoot(t)
	bin := filepath.Join(root, "bin", "versitygw")
	var buildErr error
	buildOnce.Do(func() {
		if _, err := os.Stat(bin); err == nil {
			return
		}
		// Build to a temporary name and rename, so package test binaries
		// building at the same time never run a half-written file.
		tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
		cmd := exec.Command("go", "build", "-modfile="+filepath.Join(root, ".ci", "tools", "go.mod"), "-o", tmp, "github.com/versity/versitygw/cmd/versitygw")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build versitygw: %v\n%s", err, out)
			return
		}
		buildErr = os.Rename(tmp, bin)
	})
	if buildErr != nil {
		t.Fatalf("testenv: %v (run `make tools`)", buildErr)
	}
	return bin
}

// S3Server is a running versitygw with one account.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:port
	AccessKey string
	SecretKey string
	Region    string
	Root      string // the posix folder behind it
}

// StartS3 starts a versitygw (posix backend) on a free loopback port for the
// duration of the test. It waits for the server's "listening" banner rather
// than sleeping.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	bin := versitygwBinary(t)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a port can be taken between pick and bind
		srv, err := startS3(t, bin)
		if err == nil {
			t.Logf("testenv: S3 server versitygw at %s", srv.Endpoint)
			return srv
		}
		lastErr = err
	}
	t.Fatalf("testenv: start versitygw: %v", lastErr)
	return nil
}

// Bucket creates a bucket with a fresh name on the server and returns
// storage over it under prefix; tune, if not nil, adjusts the storage
// config first.
func (s *S3Server) Bucket(t testing.TB, prefix string, tune func(*s3.Config)) *s3.Bucket {
	t.Helper()
	name := RandomName("b-")
	cfg := s3.Config{Bucket: name, Prefix: prefix, Endpoint: s.Endpoint, Region: s.Region, PathStyle: true,
		AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey}
	if tune != nil {
		tune(&cfg)
	}
	b, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Client().CreateBucket(context.Background(), &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("testenv: create bucket %s: %v", name, err)
	}
	return b
}

func startS3(t testing.TB, bin string) (*S3Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	root, side := filepath.Join(dir, "root"), filepath.Join(dir, "sidecar")
	for _, d := range []string{root, side} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	srv := &S3Server{
		Endpoint:  fmt.Sprintf("http://127.0.0.1:%d", port),
		AccessKey: "medallion-test",
		SecretKey: "medallion-test-secret",
		Region:    "us-east-1",
		Root:      root,
	}
	cmd := exec.Command(bin, "--access", srv.AccessKey, "--secret", srv.SecretKey,
		"--port", fmt.Sprintf("127.0.0.1:%d", port),
		"posix", "--sidecar", side, root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan error, 1)
	var outMu sync.Mutex
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			outMu.Lock()
			out.WriteString(sc.Text() + "\n")
			outMu.Unlock()
			if !signalled && strings.Contains(sc.Text(), "listening on") {
				ready <- nil
				signalled = true
			}
		}
		if !signalled {
			ready <- fmt.Errorf("versitygw exited before listening")
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	select {
	case err := <-ready:
		if err != nil {
			<-exited
			outMu.Lock()
			defer outMu.Unlock()
			return nil, fmt.Errorf("%w:\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return nil, fmt.Errorf("versitygw did not start within 30s")
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return srv, nil
}

// FreeAddr is a loopback address with a port nothing listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PostgresURL is the test server: $MEDALLION_TEST_PG_URL or the local
// cluster's database "test" with trust auth.
func PostgresURL() string {
	if u := os.Getenv("MEDALLION_TEST_PG_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// PostgresSchema creates a fresh schema for this test and returns a URL whose
// search_path points at it; the schema is dropped when the test ends.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("testenv: open postgres: %v", err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("testenv: PostgreSQL is not reachable at %s: %v (start it with .ci/start-postgres)", base, err)
	}
	schema := RandomName("t_")
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testenv: create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t.Logf("testenv: PostgreSQL %s schema %s", u.Redacted(), schema)
	return u.String()
}

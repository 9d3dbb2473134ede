package extract_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/config"
	_ "github.com/medallionlake/medallion/domains/all" // the built-in domains
	"github.com/medallionlake/medallion/extract"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/filesystem"
)

// deployment is what an extract runs against: its source, meta store and
// bronze storage.
type deployment struct {
	PGURL, MetaURL, Root string
}

func (d deployment) open(t *testing.T) (*pgx.Conn, meta.Store, extract.Target) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, d.PGURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	store, err := meta.Open(ctx, d.MetaURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b, err := filesystem.New(filesystem.Config{Root: d.Root})
	if err != nil {
		t.Fatal(err)
	}
	doms, err := config.BuiltinDomains()
	if err != nil {
		t.Fatal(err)
	}
	var users config.Domain
	for _, dom := range doms {
		if dom.Name == "users" {
			users = dom
		}
	}
	users.TimestampBounds.Min = "2020-01-01"
	return conn, store, extract.Target{Bucket: b, Domain: users, Source: "app", Extract: "users"}
}

var usersExtract = extract.Incremental{From: "users", Watermark: "updated_at", Key: []string{"user_id"}, Batch: 1000}

// newDeployment makes the users table with n rows over three days, plus
// one stamped before the domain's timestamp bounds.
func newDeployment(t *testing.T, n int) deployment {
	url := testenv.StartPostgresCluster(t, nil)
	dir := t.TempDir()
	d := deployment{PGURL: url, MetaURL: "sqlite://" + filepath.Join(dir, "medallion.db"), Root: filepath.Join(dir, "lakehouse")}
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	execSQL(t, c, `CREATE TABLE users (user_id text PRIMARY KEY, email text, city text, updated_at timestamptz NOT NULL)`)
	execSQL(t, c, `INSERT INTO users SELECT 'u-' || i, 'u' || i || '@example.com', 'Austin',
		timestamptz '2024-01-15 00:00:00+00' + (i % 3) * interval '1 day' + (i / 3) * interval '1 second' FROM generate_series(1, $1::int) i`, n)
	execSQL(t, c, `INSERT INTO users VALUES ('u-old', 'old@example.com', 'Austin', '2019-06-01 00:00:00+00')`)
	return d
}

// bronzeRows counts, per user_id, the rows in the domain's bronze files
// and returns the files' envelopes' headers seen.
func bronzeRows(t *testing.T, b storage.Bucket, prefix string) (map[string]int, []string) {
	t.Helper()
	ctx := context.Background()
	counts := map[string]int{}
	var headers []string
	for o, err := range b.List(ctx, prefix) {
		if err != nil {
			t.Fatal(err)
		}
		r, err := b.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		recs, err := bronze.Decode(strings.NewReader(string(raw)), int64(len(raw)))
		if err != nil {
			t.Fatalf("%s: %v", o.Key, err)
		}
		for _, rec := range recs {
			var row struct {
				UserID string `json:"user_id"`
			}
			if err := json.Unmarshal([]byte(rec.Payload), &row); err != nil {
				t.Fatal(err)
			}
			counts[row.UserID]++
			headers = append(headers, rec.Headers)
		}
	}
	return counts, headers
}

// TestIncrementalRunToBronze: an extract writes every row to the domain's
// bronze by partition date, a row outside the timestamp bounds to the
// dead letters, and records its position; the next run reads only what
// changed.
func TestIncrementalRunToBronze(t *testing.T) {
	d := newDeployment(t, 3000)
	conn, store, target := d.open(t)
	ctx := context.Background()
	res, err := usersExtract.Run(ctx, conn, store, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 3001 || res.DeadLetters != 1 || res.Batches != 4 {
		t.Fatalf("first run: %+v", res)
	}
	counts, headers := bronzeRows(t, target.Bucket, bronze.DomainPrefix("users"))
	if len(counts) != 3000 || counts["u-1"] != 1 || counts["u-old"] != 0 {
		t.Fatalf("bronze holds %d users", len(counts))
	}
	if !strings.Contains(headers[0], `"source":"app"`) || !strings.Contains(headers[0], `"watermark":"2024-01-1`) {
		t.Fatalf("envelope headers: %s", headers[0])
	}

	// A masked column's raw value never leaves the source.
	masked := usersExtract
	masked.Mask = map[string]string{"email": "sha256"}
	b, err := masked.Read(ctx, conn, extract.Position{})
	if err != nil {
		t.Fatal(err)
	}
	var first struct{ UserID, Email string }
	if err := json.Unmarshal(b.Rows[0], &first); err != nil || first.Email != sha256hex("old@example.com") {
		t.Fatalf("a masked row: %s (%v)", b.Rows[0], err)
	}
	for _, date := range []string{"2024-01-15", "2024-01-16", "2024-01-17"} {
		p, err := bronze.ListPartition(ctx, target.Bucket, "users", "snapshot_date", medtype.MustDate(date))
		if err != nil || len(p.Files) == 0 {
			t.Fatalf("no bronze for %s: %v", date, err)
		}
	}
	dead, _ := bronzeRows(t, target.Bucket, extract.DeadLetterRoot+"/users/")
	if dead["u-old"] != 1 || len(dead) != 1 {
		t.Fatalf("dead letters: %v", dead)
	}
	st, err := store.Extract(ctx, "app", "users")
	if err != nil || st.Rows != 3001 || !strings.Contains(st.Position, `"u-2999"`) { // the newest: day 3, second 999
		t.Fatalf("stored state: %+v %v", st, err)
	}

	res, err = usersExtract.Run(ctx, conn, store, target, nil)
	if err != nil || res.Rows != 0 {
		t.Fatalf("a run with nothing new: %+v %v", res, err)
	}
	execSQL(t, conn, `UPDATE users SET city = 'Boston', updated_at = now() WHERE user_id IN ('u-1', 'u-2')`)
	res, err = usersExtract.Run(ctx, conn, store, target, nil)
	if err != nil || res.Rows != 2 {
		t.Fatalf("a run after two updates: %+v %v", res, err)
	}
}

// crashEnv carries, to a child process of TestIncrementalCrash, the
// deployment it extracts on.
const crashEnv = "MEDALLION_EXTRACT_CRASH_CHILD"

// TestIncrementalCrash: the extractor is SIGKILLed after a batch's bronze
// files are written and before its position is recorded. The next run
// reads that batch again: every row reaches bronze, the crashed batch's
// rows twice (silver's dedup absorbs them), and the position and row count
// end where one clean run would.
func TestIncrementalCrash(t *testing.T) {
	if raw := os.Getenv(crashEnv); raw != "" {
		var d deployment
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			t.Fatal(err)
		}
		conn, store, target := d.open(t)
		marker := filepath.Join(d.Root, "..", "written")
		_, err := usersExtract.Run(context.Background(), conn, store, target, func() {
			os.WriteFile(marker, nil, 0o644)
			time.Sleep(time.Minute) // the parent kills us here
		})
		t.Fatalf("the child was not killed: %v", err)
	}
	d := newDeployment(t, 2500)
	spec, _ := json.Marshal(d)
	child := exec.Command(os.Args[0], "-test.run=^TestIncrementalCrash$")
	child.Env = append(os.Environ(), crashEnv+"="+string(spec))
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(d.Root, "..", "written")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("the child never wrote a batch")
		}
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	conn, store, target := d.open(t)
	ctx := context.Background()
	if _, err := store.Extract(ctx, "app", "users"); err == nil {
		t.Fatal("the killed extractor recorded a position")
	}
	res, err := usersExtract.Run(ctx, conn, store, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	counts, _ := bronzeRows(t, target.Bucket, bronze.DomainPrefix("users"))
	twice := 0
	for id, n := range counts {
		if n > 2 {
			t.Fatalf("%s is in bronze %d times", id, n)
		}
		if n == 2 {
			twice++
		}
	}
	// The crashed batch: the first 1,000 rows, u-old first (a dead letter).
	if len(counts) != 2500 || twice != 999 {
		t.Fatalf("after the crash and a rerun: %d users in bronze, %d of them twice (want 2500, 999)", len(counts), twice)
	}
	st, err := store.Extract(ctx, "app", "users")
	if err != nil || st.Rows != 2501 || res.Rows != 2501 {
		t.Fatalf("after the rerun: state %+v (%v), run %+v", st, err, res)
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func readObject(t *testing.T, b storage.Bucket, key string) []byte {
	t.Helper()
	r, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// localTarget is a fresh SQLite meta store and local bronze for an extract
// named like the built-in domain it feeds.
func localTarget(t testing.TB, domain string) (meta.Store, extract.Target) {
	t.Helper()
	dir := t.TempDir()
	store, err := meta.Open(context.Background(), "sqlite://"+filepath.Join(dir, "medallion.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b, err := filesystem.New(filesystem.Config{Root: filepath.Join(dir, "lakehouse")})
	if err != nil {
		t.Fatal(err)
	}
	doms, err := config.BuiltinDomains()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range doms {
		if d.Name == domain {
			return store, extract.Target{Bucket: b, Domain: d, Source: "app", Extract: domain}
		}
	}
	t.Fatalf("no built-in domain %s", domain)
	return nil, extract.Target{}
}

package gold_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/domains"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/gold"
	"github.com/medallionlake/medallion/internal/laketest"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/silver"
	"github.com/medallionlake/medallion/storage"
)

// gate is a bucket (not a local one, so the lake downloads what it reads)
// whose first read of a key containing match waits until release closes.
type gate struct {
	storage.Bucket
	match            string
	reached, release chan struct{}
	once             sync.Once
}

func (g *gate) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.Contains(key, g.match) {
		g.once.Do(func() {
			close(g.reached)
			<-g.release
		})
	}
	return g.Bucket.Get(ctx, key)
}

// TestCurrentTableKeepsAConcurrentMerge: partition A stages users_current,
// partition B then merges its users into it and commits, and only then
// does A write. A's write must not replace B's rows with its stale stage:
// it loses the race and recomputes, and the table holds every user.
func TestCurrentTableKeepsAConcurrentMerge(t *testing.T) {
	ctx := context.Background()
	e := laketest.New(t)
	users := laketest.Domain(t, "users")
	g := &gate{Bucket: e.Bucket, match: "gold/users_current/data/", reached: make(chan struct{}), release: make(chan struct{})}
	gated, err := lake.Open(ctx, e.Store, g, config.S3{})
	must(t, err)

	day0, dayA, dayB := medtype.MustDate("2024-01-14"), medtype.MustDate("2024-01-15"), medtype.MustDate("2024-01-16")
	must(t, partition(ctx, t, e, e.Lake, users, day0, 0, 1)) // users_current has a file for A to stage
	connA, connB := usersSilver(ctx, t, e, users, dayA, 1, 4), usersSilver(ctx, t, e, users, dayB, 4, 7)
	done := make(chan error, 1)
	go func() {
		_, err := gold.Run(ctx, connA, gated, nil, users, dayA, t.TempDir())
		done <- err
	}()
	select {
	case <-g.reached: // A has planned its stage and is reading it
	case err := <-done:
		t.Fatalf("partition A's gold ended before reading users_current: %v", err)
	}
	_, err = gold.Run(ctx, connB, e.Lake, nil, users, dayB, t.TempDir())
	must(t, err)
	close(g.release)
	must(t, <-done)

	conn, err := e.Duck.Conn(ctx)
	must(t, err)
	defer conn.Close()
	for table, c := range map[string]struct{ sel, want string }{
		"users_current": {"count(*) || ' ' || string_agg(user_id, ',' ORDER BY user_id)", "7 u-0,u-1,u-2,u-3,u-4,u-5,u-6"},
		"signups_daily": {"CAST(sum(signups) AS VARCHAR)", "7"},
	} {
		files, err := e.Lake.Files(ctx, lake.TableID{Namespace: "gold", Name: table}, nil, lake.Snapshot{})
		must(t, err)
		paths, err := e.Lake.Fetch(ctx, files, t.TempDir())
		must(t, err)
		var got string
		must(t, conn.QueryRowContext(ctx, "SELECT "+c.sel+" FROM "+duck.ReadParquet(paths, false)).Scan(&got))
		if got != c.want {
			t.Errorf("gold.%s after two concurrent merges: %s, want %s", table, got, c.want)
		}
	}
}

// partition runs silver and gold of users [from, to) updated on day.
func partition(ctx context.Context, t *testing.T, e laketest.Env, l *lake.Lake, d domains.Domain, day medtype.Date, from, to int) error {
	conn := usersSilver(ctx, t, e, d, day, from, to)
	_, err := gold.Run(ctx, conn, l, nil, d, day, t.TempDir())
	return err
}

// usersSilver puts users [from, to), updated on day, in bronze, runs
// silver on a connection of their own and returns it, holding the silver
// rows gold reads.
func usersSilver(ctx context.Context, t *testing.T, e laketest.Env, d domains.Domain, day medtype.Date, from, to int) *sql.Conn {
	t.Helper()
	at := day.Time()
	f := bronze.File{Domain: "users", PartitionKey: "snapshot_date", Date: day, Topic: "raw-users", StartOffset: int64(from)}
	var recs []bronze.Record
	for i := from; i < to; i++ {
		recs = append(recs, bronze.Record{Topic: "raw-users", Offset: int64(i), KafkaTS: at, IngestedAt: at, Headers: "{}", EventTime: at,
			Payload: fmt.Sprintf(`{"user_id":"u-%d","email":"u%d@example.com","city":"Austin","signup_ts":"2024-01-10T08:00:00Z","updated_at":"%sT01:00:00Z"}`, i, i, day)})
	}
	must(t, bronze.Put(ctx, e.Bucket, f, recs))
	conn, err := e.Duck.Conn(ctx)
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = silver.Run(ctx, conn, silver.Env{Bucket: e.Bucket, Lake: e.Lake}, d, day, []string{f.Key()}, t.TempDir())
	must(t, err)
	return conn
}

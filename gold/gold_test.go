package gold_test

import (
	"context"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/domains"
	"github.com/medallionlake/medallion/gold"
	"github.com/medallionlake/medallion/internal/laketest"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/silver"
)

// A gold SQL that lacks a merge key or the version column fails with the
// file and the column, and writes no gold table.
func TestGoldSQLMustOutputItsKeys(t *testing.T) {
	ctx := context.Background()
	e := laketest.New(t)
	b, l, db := e.Bucket, e.Lake, e.Duck
	users := laketest.Domain(t, "users")
	day := medtype.MustDate("2024-01-15")
	at := day.Time()
	f := bronze.File{Domain: "users", PartitionKey: "snapshot_date", Date: day, Topic: "raw-users"}
	must(t, bronze.Put(ctx, b, f, []bronze.Record{{Topic: "raw-users", KafkaTS: at, IngestedAt: at, Headers: "{}", EventTime: at,
		Payload: `{"user_id":"u-1","email":"a@example.com","city":"Austin","signup_date":"2024-01-10","updated_at":"2024-01-15T01:00:00Z"}`}}))

	cases := []struct {
		name  string
		spoil func(g *domains.GoldQuery)
		want  string
	}{
		{"no merge key", func(g *domains.GoldQuery) { g.SQL = "SELECT * EXCLUDE (user_id) FROM (" + g.SQL + "\n)" },
			"users gold/users_current.sql: merge key user_id is not an output column"},
		{"no version column", func(g *domains.GoldQuery) { g.SQL = "SELECT * EXCLUDE (updated_at) FROM (" + g.SQL + "\n)" },
			"users gold/users_current.sql: version_column updated_at is not an output column"},
	}
	for _, c := range cases {
		d := users
		d.Gold = append([]domains.GoldQuery(nil), users.Gold...)
		c.spoil(&d.Gold[0])
		conn, err := db.Conn(ctx)
		must(t, err)
		_, err = silver.Run(ctx, conn, silver.Env{Bucket: b, Lake: l}, d, day, []string{f.Key()}, t.TempDir())
		must(t, err)
		_, err = gold.Run(ctx, conn, l, nil, d, day, t.TempDir())
		conn.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if ids, err := l.Tables(ctx, string(medtype.LayerGold)); err != nil || len(ids) != 0 {
		t.Fatalf("broken gold SQL wrote gold tables %v (%v)", ids, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

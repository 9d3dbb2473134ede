package extract_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/extract"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/medtype"
)

// TestSnapshotRuns: a snapshot extract of restaurants with their menus
// nested by a query writes every restaurant on every run, stamped with the
// run's time in the domain's timestamp field, so each day's snapshot is
// that day's partition; a row changed between runs shows in the second.
func TestSnapshotRuns(t *testing.T) {
	url := testenv.StartPostgresCluster(t, nil)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	execSQL(t, c, `CREATE TABLE restaurants (restaurant_id text PRIMARY KEY, name text, city text, cuisine text, rating numeric(2,1), is_active boolean)`)
	execSQL(t, c, `CREATE TABLE menu_items (item_id text PRIMARY KEY, restaurant_id text REFERENCES restaurants, name text, price numeric(8,2), is_available boolean)`)
	execSQL(t, c, `INSERT INTO restaurants SELECT 'r-' || i, 'R' || i, 'Austin', 'mexican', 4.5, true FROM generate_series(1, 3) i`)
	execSQL(t, c, `INSERT INTO menu_items SELECT 'm-' || i, 'r-' || (1 + i % 3), 'Item ' || i, 4.25, true FROM generate_series(1, 6) i`)

	store, target := localTarget(t, "restaurants")
	restaurants := target.Domain
	x := extract.Snapshot{Field: restaurants.TimestampField, Batch: 2, From: `SELECT r.*, (SELECT coalesce(json_agg(json_build_object(
		'item_id', m.item_id, 'name', m.name, 'price', m.price, 'is_available', m.is_available) ORDER BY m.item_id), '[]')
		FROM menu_items m WHERE m.restaurant_id = r.restaurant_id) AS menu_items FROM restaurants r`}
	day1 := time.Date(2024, 1, 15, 13, 0, 0, 0, time.UTC)
	target.Now = func() time.Time { return day1 }
	res, err := x.Run(ctx, c, store, target, nil)
	if err != nil || res.Rows != 3 || res.Batches != 2 {
		t.Fatalf("first snapshot: %+v %v", res, err)
	}
	execSQL(t, c, `UPDATE restaurants SET rating = 3.9 WHERE restaurant_id = 'r-2'`)
	target.Now = func() time.Time { return day1.Add(24 * time.Hour) }
	if _, err := x.Run(ctx, c, store, target, nil); err != nil {
		t.Fatal(err)
	}
	for i, date := range []string{"2024-01-15", "2024-01-16"} {
		p, err := bronze.ListPartition(ctx, target.Bucket, "restaurants", restaurants.PartitionKey, medtype.MustDate(date))
		if err != nil {
			t.Fatal(err)
		}
		ratings := map[string]float64{}
		for _, f := range p.Files {
			raw := readObject(t, target.Bucket, f.Key)
			recs, err := bronze.Decode(strings.NewReader(string(raw)), int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				var row struct {
					RestaurantID string    `json:"restaurant_id"`
					Rating       float64   `json:"rating"`
					SnapshotTS   time.Time `json:"snapshot_ts"`
					MenuItems    []struct {
						ItemID string `json:"item_id"`
					} `json:"menu_items"`
				}
				if err := json.Unmarshal([]byte(r.Payload), &row); err != nil {
					t.Fatal(err)
				}
				if !row.SnapshotTS.Equal(day1.Add(time.Duration(i)*24*time.Hour)) || len(row.MenuItems) != 2 {
					t.Fatalf("%s: %s", date, r.Payload)
				}
				ratings[row.RestaurantID] = row.Rating
			}
		}
		want := map[int]float64{0: 4.5, 1: 3.9}[i]
		if len(ratings) != 3 || ratings["r-2"] != want {
			t.Fatalf("%s snapshot: %v", date, ratings)
		}
	}
	st, err := store.Extract(ctx, "app", "restaurants")
	if err != nil || st.Rows != 6 || st.Mode != "snapshot" || !strings.Contains(st.Position, "2024-01-16T13:00:00Z") {
		t.Fatalf("state: %+v %v", st, err)
	}
}

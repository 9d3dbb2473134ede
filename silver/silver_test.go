package silver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/domains"
	"github.com/medallionlake/medallion/internal/laketest"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/silver"
)

// Each kind of invalid row lands in quarantine with a reason a person can
// act on; valid rows go through, and the latest version of an order wins.
func TestValidationReasonsAndDedup(t *testing.T) {
	ctx := context.Background()
	e := laketest.New(t)
	b, l, db := e.Bucket, e.Lake, e.Duck
	orders := laketest.Domain(t, "orders")
	const base = `"order_id":"o-1","user_id":"u-1","restaurant_id":"r-1","city":"Austin","created_at":"2024-01-15T12:01:09Z","currency":"USD","items":[{"item_id":"m-1","name":"Taco","quantity":3,"unit_price":4.25}],"total_amount":12.75`
	payloads := []struct{ json, reason string }{
		{`{` + base + `,"status":"placed","updated_at":"2024-01-15T12:01:09Z"}`, ""},
		{`{` + base + `,"status":"delivered","updated_at":"2024-01-15T12:40:00.5Z"}`, ""}, // latest version
		{`{` + base + `,"status":"preparing","updated_at":"2024-01-15T12:09:44Z"}`, ""},   // delivered out of order
		{`{"order_id":"o-2"` + base[len(`"order_id":"o-1"`):] + `,"status":"lost","updated_at":"2024-01-15T12:02:00Z"}`, `unknown status "lost"`},
		{`{"order_id":7` + base[len(`"order_id":"o-1"`):] + `,"status":"placed","updated_at":"2024-01-15T12:02:00Z"}`, "order_id is not a string"},
		{`{` + base[len(`"order_id":"o-1",`):] + `,"status":"placed","updated_at":"2024-01-15T12:02:00Z"}`, "missing order_id"},
		{`{"order_id":"o-3"` + base[len(`"order_id":"o-1"`):] + `,"status":"placed","updated_at":"yesterday"}`, `unparseable updated_at "yesterday"`},
		{`{"order_id":"o-4"` + strings.Replace(base[len(`"order_id":"o-1"`):], `"quantity":3`, `"quantity":"three"`, 1) + `,"status":"placed","updated_at":"2024-01-15T12:02:00Z"}`, "items: an item lacks item_id, quantity or unit_price"},
		{`{"order_id":"o-5"` + strings.Replace(base[len(`"order_id":"o-1"`):], "2024-01-15T12:01:09Z", "2024-01-16T00:00:01Z", 1) + `,"status":"placed","updated_at":"2024-01-16T00:02:00Z"}`, "order_date 2024-01-16 is not the bronze partition 2024-01-15"},
		{`["not", "an", "object"]`, "payload is not a JSON object"},
		{`{"truncated": `, "payload is not a JSON object"},
	}
	day := medtype.MustDate("2024-01-15")
	var recs []bronze.Record
	for i, p := range payloads {
		at := day.Time().Add(time.Duration(i) * time.Second)
		recs = append(recs, bronze.Record{Topic: "raw-orders", Offset: int64(i), KafkaTS: at, IngestedAt: at, Headers: "{}", Payload: p.json, EventTime: at})
	}
	f := bronze.File{Domain: "orders", PartitionKey: "order_date", Date: day, Topic: "raw-orders"}
	must(t, bronze.Put(ctx, b, f, recs))

	conn, err := db.Conn(ctx)
	must(t, err)
	defer conn.Close()
	res, err := silver.Run(ctx, conn, silver.Env{Bucket: b, Lake: l}, orders, day, []string{f.Key()}, t.TempDir())
	must(t, err)
	if res.BronzeRecords != int64(len(payloads)) || res.Quarantined != 8 || res.SilverRecords != 1 {
		t.Fatalf("result = %+v", res)
	}
	rows, err := conn.QueryContext(ctx, "SELECT _offset, reason, payload FROM quarantined ORDER BY _offset")
	must(t, err)
	defer rows.Close()
	got, raw := map[int]string{}, map[int]string{}
	for rows.Next() {
		var off int
		var reason, payload string
		must(t, rows.Scan(&off, &reason, &payload))
		got[off], raw[off] = reason, payload
	}
	for i, p := range payloads {
		if got[i] != p.reason {
			t.Errorf("message %d: reason %q, want %q", i, got[i], p.reason)
		}
		if p.reason != "" && raw[i] != p.json {
			t.Errorf("message %d: quarantined payload %q, want the raw %q", i, raw[i], p.json)
		}
	}
	var status, hash, source string
	must(t, conn.QueryRowContext(ctx, "SELECT status, record_hash, _source_file FROM silver_orders").Scan(&status, &hash, &source))
	if status != "delivered" || len(hash) != 64 || source != f.Key() {
		t.Fatalf("silver row: status %q hash %q source %q", status, hash, source)
	}
	var items int
	must(t, conn.QueryRowContext(ctx, "SELECT sum(quantity) FROM silver_order_items").Scan(&items))
	if items != 3 {
		t.Fatalf("order items quantity = %d", items)
	}
	// The same run again writes nothing new.
	before := res.Commits["silver.orders"].SnapshotID
	res, err = silver.Run(ctx, conn, silver.Env{Bucket: b, Lake: l}, orders, day, []string{f.Key()}, t.TempDir())
	must(t, err)
	if c := res.Commits["silver.orders"]; c.Changed || c.SnapshotID != before {
		t.Fatalf("re-run committed: %+v", c)
	}
}

// A domain whose SQL breaks the contract fails with the file and what is
// wrong, before anything is written.
func TestBrokenDomainSQL(t *testing.T) {
	ctx := context.Background()
	e := laketest.New(t)
	b, l, db := e.Bucket, e.Lake, e.Duck
	events := laketest.Domain(t, "events")
	day := medtype.MustDate("2024-01-15")
	at := day.Time()
	f := bronze.File{Domain: "events", PartitionKey: "event_date", Date: day, Topic: "raw-events"}
	must(t, bronze.Put(ctx, b, f, []bronze.Record{{Topic: "raw-events", KafkaTS: at, IngestedAt: at, Headers: "{}", EventTime: at,
		Payload: `{"event_id":"e-1","event_type":"search","event_timestamp":"2024-01-15T01:00:00Z","user_id":"u-1"}`}}))

	cases := []struct {
		name  string
		spoil func(d *domains.Domain)
		want  string
	}{
		{"parse without _reason", func(d *domains.Domain) { d.Parse = "SELECT * EXCLUDE (_reason) FROM (" + d.Parse + "\n)" },
			"events parse.sql: does not output _reason"},
		{"silver without the partition key", func(d *domains.Domain) {
			d.Silver = []domains.Query{{Table: "events", SQL: "SELECT event_id, _source_file FROM deduped"}}
		}, "events silver/events.sql: does not output event_date"},
		{"silver with its own record_hash", func(d *domains.Domain) {
			d.Silver = []domains.Query{{Table: "events", SQL: "SELECT event_date, event_id, 'x' AS record_hash FROM deduped"}}
		}, "events silver/events.sql: must not output record_hash"},
	}
	for _, c := range cases {
		d := events
		c.spoil(&d)
		conn, err := db.Conn(ctx)
		must(t, err)
		_, err = silver.Run(ctx, conn, silver.Env{Bucket: b, Lake: l}, d, day, []string{f.Key()}, t.TempDir())
		conn.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if ids, err := l.Tables(ctx, string(medtype.LayerSilver)); err != nil || len(ids) != 0 {
		t.Fatalf("broken SQL wrote silver tables %v (%v)", ids, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

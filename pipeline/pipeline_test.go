package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/domains"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/silver"
)

const tsFormat = "'%Y-%m-%dT%H:%M:%S.%gZ'"

// checkTables compares every silver, quarantine and gold table with the
// model.
func (e *env) checkTables(t *testing.T, m *model) {
	t.Helper()
	diff(t, "silver.events event_id", e.rows(t, "silver.events", "SELECT event_id FROM t"), m.eventIDs)
	if dup := e.rows(t, "silver.events", "SELECT count(*) - count(DISTINCT event_id) FROM t"); dup[0] != "0" {
		t.Errorf("silver.events has %s duplicate event_ids", dup[0])
	}
	diff(t, "silver.orders latest status", e.rows(t, "silver.orders", "SELECT order_id, status, strftime(updated_at, "+tsFormat+") FROM t"), m.orderStatuses())
	var quarantined []string
	for _, d := range []string{"events", "orders", "restaurants", "users"} {
		quarantined = append(quarantined, e.rows(t, "quarantine."+d, "SELECT _topic, _partition, _offset FROM t")...)
	}
	slices.Sort(quarantined)
	diff(t, "quarantine rows", quarantined, m.quarantine)
	if len(m.quarantine) == 0 {
		t.Error("the data has no malformed rows; the quarantine check proves nothing")
	}
	diff(t, "gold.events_hourly", e.rows(t, "gold.events_hourly",
		"SELECT event_date, strftime(event_hour, '%Y-%m-%d %H:%M:%S'), event_type, events, unique_users FROM t"), m.eventsHourly())
	diff(t, "gold.funnel_daily", e.rows(t, "gold.funnel_daily", "SELECT event_date, step, step_name, users, conversion_from_first FROM t"), m.funnel())
	diff(t, "gold.revenue_daily", e.rows(t, "gold.revenue_daily", "SELECT event_date, city, purchases, revenue, avg_order_value FROM t"), m.revenue())
	diff(t, "gold.orders_daily", e.rows(t, "gold.orders_daily", "SELECT order_date, city, status, orders, items, gross_amount FROM t"), m.ordersDaily())
	diff(t, "gold.restaurants_current", e.rows(t, "gold.restaurants_current",
		"SELECT restaurant_id, name, rating, menu_item_count, available_menu_items, strftime(snapshot_ts, "+tsFormat+") FROM t"), m.restaurantsCurrent())
	diff(t, "gold.users_current", e.rows(t, "gold.users_current",
		"SELECT user_id, email_sha256, city, signup_date, strftime(updated_at, "+tsFormat+") FROM t"), m.usersCurrent())
	diff(t, "gold.signups_daily", e.rows(t, "gold.signups_daily", "SELECT signup_date, city, signups FROM t"), m.signups())
}

func allDone(t *testing.T, sum pipeline.Summary) {
	t.Helper()
	if !sum.Healthy() || len(sum.Failures) > 0 {
		t.Fatalf("run not healthy: %+v failures %v", sum.Domains, sum.Failures)
	}
}

// TestEndToEnd: correct results, idempotency, backfill of DONE partitions,
// and late data, on both deployments.
func TestEndToEnd(t *testing.T) {
	for _, backend := range backendNames {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend, nil, nil)
			msgs, err := generate.Generate(generate.Options{Seed: 7, Start: medtype.MustDate("2024-01-15"), Days: 3, EventsPerDay: 3000,
				Duplicates: 0.02, Malformed: 0.002, Late: 0.01})
			must(t, err)
			st := e.write(t, msgs, false)
			t.Logf("bronze: %+v", st)

			// Correct results.
			sum := e.run(t, pipeline.Options{})
			allDone(t, sum)
			for _, ds := range sum.Domains {
				if ds.Done != 3 || ds.New != 3 {
					t.Fatalf("%s: %+v, want 3 new partitions done", ds.Domain, *ds)
				}
			}
			m := buildModel(msgs, false)
			e.checkTables(t, m)
			p := e.state(t, "events", "2024-01-16")
			if p.Status != medtype.StateDone || p.RecordCount == 0 || p.SilverRecords == 0 || p.GoldRecords == 0 ||
				p.FileHash == "" || len(p.SourceFiles) == 0 || p.Snapshots["silver.events"] == 0 || p.Snapshots["gold.funnel_daily"] == 0 {
				t.Fatalf("DONE partition lacks its record: %+v", p)
			}

			// Idempotency: a second run processes nothing and writes no snapshot.
			snaps := e.snapshots(t)
			sum = e.run(t, pipeline.Options{})
			for _, ds := range sum.Domains {
				if ds.Processed != 0 || ds.New != 0 || ds.Late != 0 {
					t.Fatalf("second run did work: %+v", *ds)
				}
			}
			if got := e.snapshots(t); fmt.Sprint(got) != fmt.Sprint(snaps) {
				t.Fatalf("second run wrote snapshots:\n%v\n%v", snaps, got)
			}

			// Backfill of DONE partitions: reprocessed, every table identical.
			sum = e.run(t, pipeline.Options{Command: "backfill", From: medtype.MustDate("2024-01-15"), To: medtype.MustDate("2024-01-18"), Reprocess: "all"})
			allDone(t, sum)
			reset := 0
			for _, ds := range sum.Domains {
				reset += ds.Reset
			}
			if reset != 12 {
				t.Fatalf("backfill reset %d partitions, want 12", reset)
			}
			if len(sum.Missing) != 4 || sum.Missing[0].Date.String() != "2024-01-18" {
				t.Fatalf("backfill should report 2024-01-18 (no bronze) for every domain: %v", sum.Missing)
			}
			if got := e.snapshots(t); fmt.Sprint(got) != fmt.Sprint(snaps) {
				t.Fatalf("reprocessing DONE partitions changed tables:\n%v\n%v", snaps, got)
			}
			e.checkTables(t, m)

			// Late data: new bronze files in DONE partitions.
			st = e.write(t, msgs, true)
			if st.Files == 0 {
				t.Fatal("no late files were written")
			}
			sum = e.run(t, pipeline.Options{})
			allDone(t, sum)
			late := 0
			for _, ds := range sum.Domains {
				late += ds.Late
			}
			if late == 0 {
				t.Fatal("no partition was marked LATE")
			}
			e.checkTables(t, buildModel(msgs, true))
			hist, err := e.deps.Store.History(context.Background(), medtype.PartitionKey{Domain: "events", Date: medtype.MustDate("2024-01-15")}, 4)
			must(t, err)
			var path []string
			for _, h := range hist {
				path = append(path, string(h.From)+">"+string(h.To))
			}
			if strings.Join(path, " ") != "IN_FLIGHT>DONE REPROCESSING>IN_FLIGHT LATE>REPROCESSING DONE>LATE" {
				t.Fatalf("late partition history: %v", path)
			}

			// Reprocessing the oldest users and restaurants days must not
			// regress the current-state tables.
			snaps = e.snapshots(t)
			sum = e.run(t, pipeline.Options{Command: "backfill", Domains: []string{"users", "restaurants"},
				From: medtype.MustDate("2024-01-15"), To: medtype.MustDate("2024-01-15"), Reprocess: "all"})
			allDone(t, sum)
			after := e.snapshots(t)
			for _, tbl := range []string{"gold.users_current", "gold.restaurants_current", "gold.signups_daily"} {
				if after[tbl] != snaps[tbl] {
					t.Errorf("reprocessing an old partition changed %s", tbl)
				}
			}
			e.checkTables(t, buildModel(msgs, true))
		})
	}
}

// paymentsDomain loads the test-only fifth domain into a registry of its
// own; its SQL sits in a MapFS so a test can "deploy a fix".
func paymentsDomain(t *testing.T) (*domains.Registry, fstest.MapFS, config.Domain) {
	t.Helper()
	cfg, errs := config.LoadDomainFile("testdata/payments.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	fsys := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS("testdata/payments"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(os.DirFS("testdata/payments"), p)
		fsys[p] = &fstest.MapFile{Data: data}
		return err
	})
	must(t, err)
	reg := domains.NewRegistry()
	must(t, reg.Register(domains.Spec{Name: "payments", SQL: fsys}))
	return reg, fsys, cfg
}

func writePayments(t *testing.T, e *env, date string, n int, startOffset int64) {
	t.Helper()
	day := medtype.MustDate(date)
	var recs []bronze.Record
	for i := 0; i < n; i++ {
		at := day.Time().Add(time.Duration(i) * time.Minute)
		method := []string{"card", "cash"}[i%2]
		payload := fmt.Sprintf(`{"payment_id":"p-%s-%d","paid_at":"%s","method":"%s","amount":%d.50}`, date, i, at.Format(time.RFC3339), method, 10+i)
		recs = append(recs, bronze.Record{Topic: "raw-payments", Offset: startOffset + int64(i), KafkaTS: at, IngestedAt: at, Headers: "{}", Payload: payload, EventTime: at})
	}
	f := bronze.File{Domain: "payments", PartitionKey: "payment_date", Date: day, Topic: "raw-payments", StartOffset: startOffset}
	must(t, bronze.Put(context.Background(), e.deps.Bucket, f, recs))
}

// TestGoldFailureRetriesThenDead: a partition whose gold fails goes FAILED,
// RETRYING on the next run, DEAD after max_retries, while the others
// finish; a backfill after the fix brings it back.
func TestGoldFailureRetriesThenDead(t *testing.T) {
	for _, backend := range backendNames {
		t.Run(backend, func(t *testing.T) {
			reg, fsys, cfg := paymentsDomain(t)
			good := fsys["gold/payments_daily.sql"].Data
			fsys["gold/payments_daily.sql"] = &fstest.MapFile{Data: []byte(strings.Replace(string(good), "FROM silver_payments",
				"FROM silver_payments WHERE CASE WHEN payment_date = DATE '2024-01-16' THEN error('ledger mismatch on 2024-01-16') ELSE true END", 1))}
			e := newEnv(t, backend, reg, []config.Domain{cfg})
			for i, d := range []string{"2024-01-15", "2024-01-16", "2024-01-17"} {
				writePayments(t, e, d, 20, int64(i*100))
			}
			expect := func(run int, status meta.State, retries int) {
				t.Helper()
				p := e.state(t, "payments", "2024-01-16")
				if p.Status != status || p.RetryCount != retries {
					t.Fatalf("after run %d: %s retry_count %d, want %s %d (error %q)", run, p.Status, p.RetryCount, status, retries, p.ErrorMessage)
				}
			}
			sum := e.run(t, pipeline.Options{})
			if sum.Healthy() || sum.Domains[0].Done != 2 || sum.Domains[0].Failed != 1 {
				t.Fatalf("first run: %+v", *sum.Domains[0])
			}
			if !strings.Contains(e.state(t, "payments", "2024-01-16").ErrorMessage, "ledger mismatch on 2024-01-16") {
				t.Fatalf("error message not recorded: %+v", e.state(t, "payments", "2024-01-16"))
			}
			expect(1, medtype.StateFailed, 0)
			for _, d := range []string{"2024-01-15", "2024-01-17"} {
				if e.state(t, "payments", d).Status != medtype.StateDone {
					t.Fatalf("%s did not finish", d)
				}
			}
			e.run(t, pipeline.Options{})
			expect(2, medtype.StateFailed, 1)
			e.run(t, pipeline.Options{})
			expect(3, medtype.StateFailed, 2)
			sum = e.run(t, pipeline.Options{})
			expect(4, medtype.StateDead, 2)
			if sum.Healthy() || sum.Domains[0].Dead != 1 {
				t.Fatalf("DEAD run must be unhealthy: %+v", *sum.Domains[0])
			}
			// A DEAD partition stays DEAD on later runs: it needs a person.
			e.run(t, pipeline.Options{})
			expect(5, medtype.StateDead, 2)

			// The fix is deployed; a backfill of failed partitions revives it.
			fsys["gold/payments_daily.sql"] = &fstest.MapFile{Data: good}
			doms, err := reg.BindAll([]config.Domain{cfg})
			must(t, err)
			e.deps.Domains = doms
			sum = e.run(t, pipeline.Options{Command: "backfill", From: medtype.MustDate("2024-01-15"), To: medtype.MustDate("2024-01-17"), Reprocess: "failed"})
			allDone(t, sum)
			if sum.Domains[0].Reset != 1 || sum.Domains[0].Done != 1 {
				t.Fatalf("backfill --reprocess failed: %+v", *sum.Domains[0])
			}
			expect(6, medtype.StateDone, 0)
			diff(t, "gold.payments_daily", e.rows(t, "gold.payments_daily", "SELECT payment_date, method, payments, amount FROM t"), []string{
				// card: rows 0, 2, …, 18 pay 10.50, 12.50, …; cash: rows 1, 3, …, 19.
				"2024-01-15\tcard\t10\t195.00", "2024-01-15\tcash\t10\t205.00",
				"2024-01-16\tcard\t10\t195.00", "2024-01-16\tcash\t10\t205.00",
				"2024-01-17\tcard\t10\t195.00", "2024-01-17\tcash\t10\t205.00",
			})
		})
	}
}

// TestCrashedWorker: a worker dies after committing silver but before gold
// and before recording anything. Its lease expires; the next run rescues
// the partition and finishes it with correct tables and no duplicates.
func TestCrashedWorker(t *testing.T) {
	for _, backend := range backendNames {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, backend, nil, nil)
			msgs, err := generate.Generate(generate.Options{Seed: 11, Start: medtype.MustDate("2024-02-01"), Days: 1, EventsPerDay: 1500,
				Duplicates: 0.02, Malformed: 0.003, Domains: []string{"orders", "users"}})
			must(t, err)
			e.write(t, msgs, false)
			key := medtype.PartitionKey{Domain: "orders", Date: medtype.MustDate("2024-02-01")}
			part, err := bronze.ListPartition(ctx, e.deps.Bucket, "orders", "order_date", key.Date)
			must(t, err)
			_, err = e.deps.Store.Discover(ctx, key, part.Keys(), part.Hash(), "crashed-run", time.Now())
			must(t, err)
			claimed, err := e.deps.Store.Claim(ctx, meta.ClaimParams{Worker: "worker-that-dies", LeaseTTL: time.Minute, Limit: 1, Now: time.Now()})
			must(t, err)
			if len(claimed) != 1 {
				t.Fatalf("claimed %d", len(claimed))
			}
			// What the dead worker got done: silver committed, nothing else.
			conn, err := e.deps.Duck.Conn(ctx)
			must(t, err)
			orders := e.deps.Domains[slices.IndexFunc(e.deps.Domains, func(d domains.Domain) bool { return d.Name == "orders" })]
			_, err = silver.Run(ctx, conn, silver.Env{Bucket: e.deps.Bucket, Lake: e.deps.Lake}, orders, key.Date, part.Keys(), t.TempDir())
			must(t, err)
			conn.Close()

			// A run while the lease is live leaves the partition alone.
			sum := e.run(t, pipeline.Options{Domains: []string{"orders"}})
			if sum.Domains[0].Processed != 0 || e.state(t, "orders", "2024-02-01").Status != medtype.StateInFlight {
				t.Fatalf("a live lease was taken over: %+v", *sum.Domains[0])
			}
			// Two minutes later the lease has expired.
			e.deps.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
			sum = e.run(t, pipeline.Options{})
			allDone(t, sum)
			p := e.state(t, "orders", "2024-02-01")
			if p.Status != medtype.StateDone || p.RetryCount != 0 || p.Attempts != 2 { // a rescue is not counted
				t.Fatalf("rescued partition: %s retries %d attempts %d", p.Status, p.RetryCount, p.Attempts)
			}
			m := buildModel(msgs, false)
			diff(t, "silver.orders", e.rows(t, "silver.orders", "SELECT order_id, status, strftime(updated_at, "+tsFormat+") FROM t"), m.orderStatuses())
			if dup := e.rows(t, "silver.orders", "SELECT count(*) - count(DISTINCT order_id) FROM t"); dup[0] != "0" {
				t.Fatalf("silver.orders has %s duplicates", dup[0])
			}
			diff(t, "gold.orders_daily", e.rows(t, "gold.orders_daily", "SELECT order_date, city, status, orders, items, gross_amount FROM t"), m.ordersDaily())
		})
	}
}

// TestOverlap: a second run while one holds the lock exits at once.
func TestOverlap(t *testing.T) {
	for _, backend := range backendNames {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend, nil, nil)
			release, err := e.deps.Store.TryLock(context.Background(), pipeline.LockName)
			must(t, err)
			_, err = pipeline.Run(context.Background(), e.deps, pipeline.Options{})
			if !errors.Is(err, pipeline.ErrOverlap) || !strings.Contains(err.Error(), "another medallion run or backfill is in progress") {
				t.Fatalf("second run: %v", err)
			}
			must(t, release())
			if _, err := pipeline.Run(context.Background(), e.deps, pipeline.Options{}); err != nil {
				t.Fatalf("run after release: %v", err)
			}
		})
	}
}

// TestBackfillDryRunChangesNothing lists without writing.
func TestBackfillDryRunChangesNothing(t *testing.T) {
	e := newEnv(t, "sqlite+local", nil, nil)
	msgs, err := generate.Generate(generate.Options{Seed: 3, Start: medtype.MustDate("2024-03-01"), Days: 2, EventsPerDay: 500, Domains: []string{"events"}})
	must(t, err)
	e.write(t, msgs, false)
	sum := e.run(t, pipeline.Options{Command: "backfill", Domains: []string{"events"}, From: medtype.MustDate("2024-03-01"), To: medtype.MustDate("2024-03-03"), Reprocess: "all", DryRun: true})
	if len(sum.Planned) != 2 || sum.Planned[0].Status != medtype.StateUndiscovered || len(sum.Missing) != 1 || sum.Missing[0].Date.String() != "2024-03-03" {
		t.Fatalf("dry run: planned %+v missing %v", sum.Planned, sum.Missing)
	}
	parts, err := e.deps.Store.List(context.Background(), meta.Filter{})
	must(t, err)
	runs, err := e.deps.Store.Runs(context.Background(), 5)
	must(t, err)
	if len(parts) != 0 || len(runs) != 0 || len(e.snapshots(t)) != 0 {
		t.Fatalf("dry run changed state: %d partitions, %d runs", len(parts), len(runs))
	}
}

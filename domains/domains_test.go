package domains_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/domains"
	_ "github.com/medallionlake/medallion/domains/all"
)

func sqlFS(files ...string) fstest.MapFS {
	m := fstest.MapFS{}
	for _, f := range files {
		m[f] = &fstest.MapFile{Data: []byte("SELECT 1")}
	}
	return m
}

func TestRegistry(t *testing.T) {
	r := domains.NewRegistry()
	if err := r.Register(domains.Spec{Name: "x", SQL: sqlFS("parse.sql", "silver/x.sql")}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(domains.Spec{Name: "x", SQL: sqlFS("parse.sql", "silver/x.sql")}); err == nil {
		t.Error("duplicate registration accepted")
	}
	if err := r.Register(domains.Spec{Name: "y", SQL: sqlFS("silver/y.sql")}); err == nil {
		t.Error("spec without parse.sql accepted")
	}
	if err := r.Register(domains.Spec{Name: "z", SQL: sqlFS("parse.sql", "silver/other.sql")}); err == nil {
		t.Error("spec without its main silver table accepted")
	}
	if err := r.Register(domains.Spec{Name: "n"}); err == nil {
		t.Error("spec without SQL accepted")
	}
	_, err := r.Lookup("payments")
	if err == nil || err.Error() != `unknown domain "payments" (forgotten import?)` {
		t.Errorf("lookup of an unknown domain: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("MustRegister of a duplicate did not panic")
		}
	}()
	domains.MustRegister(domains.Spec{Name: "events", SQL: sqlFS("parse.sql", "silver/events.sql")})
}

func TestBindChecksGoldTablesBothWays(t *testing.T) {
	r := domains.NewRegistry()
	if err := r.Register(domains.Spec{Name: "x", SQL: sqlFS("parse.sql", "silver/x.sql", "silver/x_items.sql", "gold/a.sql", "gold/b.sql")}); err != nil {
		t.Fatal(err)
	}
	cfg := config.Domain{Name: "x", File: "x.yaml", Gold: []config.GoldTable{{Table: "a"}, {Table: "b"}}}
	d, err := r.Bind(cfg)
	if err != nil || len(d.Silver) != 2 || d.Silver[0].Table != "x" || len(d.Gold) != 2 {
		t.Fatalf("bind: %+v %v", d, err)
	}
	cfg.Gold = []config.GoldTable{{Table: "a"}}
	if _, err := r.Bind(cfg); err == nil || !strings.Contains(err.Error(), "gold/b.sql but no gold entry") {
		t.Errorf("SQL without YAML entry: %v", err)
	}
	cfg.Gold = []config.GoldTable{{Table: "a"}, {Table: "b"}, {Table: "c"}}
	if _, err := r.Bind(cfg); err == nil || !strings.Contains(err.Error(), "gold table c") {
		t.Errorf("YAML entry without SQL: %v", err)
	}
}

// The four reference domains bind to their YAML.
func TestReferenceDomainsBind(t *testing.T) {
	cfgs, err := config.BuiltinDomains()
	if err != nil {
		t.Fatal(err)
	}
	doms, err := domains.Default.BindAll(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"events": "events", "orders": "orders,order_items", "restaurants": "restaurants,menu_items", "users": "users"}
	for _, d := range doms {
		var tables []string
		for _, s := range d.Silver {
			tables = append(tables, s.Table)
		}
		if strings.Join(tables, ",") != want[d.Name] {
			t.Errorf("%s silver tables = %v", d.Name, tables)
		}
	}
}

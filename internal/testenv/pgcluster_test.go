package testenv_test

import (
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/medallionlake/medallion/internal/testenv"
)

// TestPostgresCluster: a cluster of its own runs with the settings asked
// for (logical decoding, which the shared server lacks).
func TestPostgresCluster(t *testing.T) {
	url := testenv.StartPostgresCluster(t, map[string]string{"wal_level": "logical", "max_replication_slots": "4"})
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var level, slots string
	if err := db.QueryRow("SELECT current_setting('wal_level'), current_setting('max_replication_slots')").Scan(&level, &slots); err != nil {
		t.Fatal(err)
	}
	if level != "logical" || slots != "4" {
		t.Fatalf("wal_level %s, max_replication_slots %s", level, slots)
	}
	var lsn string
	if err := db.QueryRow("SELECT lsn::text FROM pg_create_logical_replication_slot('medallion_test', 'pgoutput')").Scan(&lsn); err != nil {
		t.Fatalf("a logical slot: %v", err)
	}
}

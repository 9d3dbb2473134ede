package query_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/query"
)

// TestWriteArrow: every column type arrives in the Arrow stream with its
// Arrow type and value, NULLs included, and a result larger than one
// record batch streams as several.
func TestWriteArrow(t *testing.T) {
	ctx := context.Background()
	db, err := duck.Open(config.Defaults().DuckDB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmt := `SELECT true AS b, 1::TINYINT AS i1, 2::SMALLINT AS i2, 3::INTEGER AS i4, 4::BIGINT AS i8, 5::UBIGINT AS u8,
		1.5::FLOAT AS f4, 2.25::DOUBLE AS f8, 1234.56::DECIMAL(12,2) AS dec, 'héllo' AS s, '\x01\x02'::BLOB AS bin,
		DATE '2024-01-15' AS d, TIMESTAMP '2024-01-15 06:30:00.123456' AS ts, TIMESTAMPTZ '2024-01-15 06:30:00+00' AS tstz,
		INTERVAL 90 MINUTE AS iv, [1, 2] AS list, NULL::INTEGER AS nothing`
	rows, err := db.QueryContext(ctx, stmt)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := query.Write(&buf, rows, "arrow")
	rows.Close()
	if err != nil || n != 1 {
		t.Fatalf("write: %d rows, %v", n, err)
	}
	r, err := ipc.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var types, values []string
	for _, f := range r.Schema().Fields() {
		types = append(types, f.Name+":"+f.Type.String())
	}
	if !r.Next() {
		t.Fatalf("no record batch: %v", r.Err())
	}
	rec := r.RecordBatch()
	for i := range rec.Columns() {
		values = append(values, rec.Column(i).ValueStr(0))
	}
	wantTypes := "b:bool i1:int8 i2:int16 i4:int32 i8:int64 u8:uint64 f4:float32 f8:float64 dec:decimal(12, 2) s:utf8 bin:binary " +
		"d:date32 ts:timestamp[us] tstz:timestamp[us, tz=UTC] iv:month_day_nano_interval list:utf8 nothing:int32"
	if strings.Join(types, " ") != wantTypes {
		t.Errorf("types\n %s\nwant\n %s", strings.Join(types, " "), wantTypes)
	}
	wantValues := `true 1 2 3 4 5 1.5 2.25 1234.56 héllo AQI= 2024-01-15 2024-01-15T06:30:00.123456 2024-01-15T06:30:00Z {"months":0,"days":0,"nanoseconds":5400000000000} [1,2] (null)`
	if got := strings.Join(values, " "); got != wantValues {
		t.Errorf("values\n %s\nwant\n %s", got, wantValues)
	}

	rows, err = db.QueryContext(ctx, "SELECT i, i::VARCHAR AS s FROM range(150000) t(i)")
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	n, err = query.Write(&buf, rows, "arrow")
	rows.Close()
	if err != nil || n != 150000 {
		t.Fatalf("write: %d rows, %v", n, err)
	}
	r, err = ipc.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var batches []string
	var sum int64
	for r.Next() {
		batches = append(batches, fmt.Sprint(r.RecordBatch().NumRows()))
		sum += r.RecordBatch().NumRows()
	}
	if strings.Join(batches, ",") != "65536,65536,18928" || sum != 150000 {
		t.Fatalf("batches %v (%d rows)", batches, sum)
	}
}

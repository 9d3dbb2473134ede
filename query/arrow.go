package query

import (
	"database/sql"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"
)

// arrowBatch is how many rows each Arrow record batch holds: the result
// streams out batch by batch, never whole.
const arrowBatch = 64 * 1024

// writeArrow writes rows as an Arrow IPC stream (pyarrow.ipc.open_stream,
// polars.read_ipc_stream). Columns keep their types; types without a plain
// Arrow equivalent here (lists, structs, maps, ...) are written as their
// text.
func writeArrow(w io.Writer, rows *sql.Rows) (int, error) {
	cols, err := rows.ColumnTypes()
	if err != nil {
		return 0, err
	}
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.Name(), Type: arrowType(c.DatabaseTypeName()), Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	iw := ipc.NewWriter(w, ipc.WithSchema(schema))
	flush := func() error {
		rec := b.NewRecordBatch()
		defer rec.Release()
		return iw.Write(rec)
	}
	vals, ptrs := make([]any, len(cols)), make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		for i, v := range vals {
			if err := appendArrow(b.Field(i), v, cols[i].DatabaseTypeName()); err != nil {
				return n, fmt.Errorf("column %s: %w", cols[i].Name(), err)
			}
		}
		if n++; n%arrowBatch == 0 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	if n%arrowBatch != 0 || n == 0 {
		if err := flush(); err != nil {
			return n, err
		}
	}
	return n, iw.Close()
}

var arrowTypes = map[string]arrow.DataType{
	"BOOLEAN": arrow.FixedWidthTypes.Boolean, "TINYINT": arrow.PrimitiveTypes.Int8, "SMALLINT": arrow.PrimitiveTypes.Int16,
	"INTEGER": arrow.PrimitiveTypes.Int32, "BIGINT": arrow.PrimitiveTypes.Int64, "UTINYINT": arrow.PrimitiveTypes.Uint8,
	"USMALLINT": arrow.PrimitiveTypes.Uint16, "UINTEGER": arrow.PrimitiveTypes.Uint32, "UBIGINT": arrow.PrimitiveTypes.Uint64,
	"FLOAT": arrow.PrimitiveTypes.Float32, "DOUBLE": arrow.PrimitiveTypes.Float64, "VARCHAR": arrow.BinaryTypes.String,
	"BLOB": arrow.BinaryTypes.Binary, "DATE": arrow.FixedWidthTypes.Date32,
	"TIMESTAMP":   &arrow.TimestampType{Unit: arrow.Microsecond},
	"TIMESTAMPTZ": &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"},
	"INTERVAL":    arrow.FixedWidthTypes.MonthDayNanoInterval,
}

// arrowType is the Arrow type of a DuckDB column type.
func arrowType(duck string) arrow.DataType {
	if t, ok := arrowTypes[duck]; ok {
		return t
	}
	var p, s int32
	if _, err := fmt.Sscanf(duck, "DECIMAL(%d,%d)", &p, &s); err == nil && p <= 38 {
		return &arrow.Decimal128Type{Precision: p, Scale: s}
	}
	return arrow.BinaryTypes.String
}

// appendArrow appends one scanned value to its column's builder.
func appendArrow(b array.Builder, v any, duck string) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	switch b := b.(type) {
	case *array.BooleanBuilder:
		b.Append(v.(bool))
	case *array.Int8Builder:
		b.Append(v.(int8))
	case *array.Int16Builder:
		b.Append(v.(int16))
	case *array.Int32Builder:
		b.Append(v.(int32))
	case *array.Int64Builder:
		b.Append(v.(int64))
	case *array.Uint8Builder:
		b.Append(v.(uint8))
	case *array.Uint16Builder:
		b.Append(v.(uint16))
	case *array.Uint32Builder:
		b.Append(v.(uint32))
	case *array.Uint64Builder:
		b.Append(v.(uint64))
	case *array.Float32Builder:
		b.Append(v.(float32))
	case *array.Float64Builder:
		b.Append(v.(float64))
	case *array.Decimal128Builder:
		d, ok := v.(duckdb.Decimal)
		if !ok {
			return fmt.Errorf("decimal scanned as %T", v)
		}
		b.Append(decimal128.FromBigInt(d.Value))
	case *array.Date32Builder:
		b.Append(arrow.Date32FromTime(v.(time.Time)))
	case *array.TimestampBuilder:
		b.Append(arrow.Timestamp(v.(time.Time).UnixMicro()))
	case *array.MonthDayNanoIntervalBuilder:
		iv, ok := v.(duckdb.Interval)
		if !ok {
			return fmt.Errorf("interval scanned as %T", v)
		}
		b.Append(arrow.MonthDayNanoInterval{Months: iv.Months, Days: iv.Days, Nanoseconds: iv.Micros * 1000})
	case *array.BinaryBuilder:
		b.Append(v.([]byte))
	case *array.StringBuilder:
		if s, ok := v.(string); ok {
			b.Append(s)
		} else {
			b.Append(strings.TrimSpace(text(v, duck, false)))
		}
	default:
		return fmt.Errorf("no Arrow builder for %T", b)
	}
	return nil
}

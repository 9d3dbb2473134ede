package serve

import (
	"fmt"
	"math/big"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5/pgtype"
)

// oids maps DuckDB column types to the PostgreSQL types clients see.
// Unsigned integers take the next wider signed type; a type without a
// PostgreSQL equivalent here is sent as text.
var oids = map[duckdb.Type]uint32{
	duckdb.TYPE_BOOLEAN: pgtype.BoolOID, duckdb.TYPE_TINYINT: pgtype.Int2OID, duckdb.TYPE_SMALLINT: pgtype.Int2OID,
	duckdb.TYPE_INTEGER: pgtype.Int4OID, duckdb.TYPE_BIGINT: pgtype.Int8OID, duckdb.TYPE_UTINYINT: pgtype.Int2OID,
	duckdb.TYPE_USMALLINT: pgtype.Int4OID, duckdb.TYPE_UINTEGER: pgtype.Int8OID, duckdb.TYPE_UBIGINT: pgtype.NumericOID,
	duckdb.TYPE_HUGEINT: pgtype.NumericOID, duckdb.TYPE_FLOAT: pgtype.Float4OID, duckdb.TYPE_DOUBLE: pgtype.Float8OID,
	duckdb.TYPE_DECIMAL: pgtype.NumericOID, duckdb.TYPE_VARCHAR: pgtype.TextOID, duckdb.TYPE_BLOB: pgtype.ByteaOID,
	duckdb.TYPE_DATE: pgtype.DateOID, duckdb.TYPE_TIMESTAMP: pgtype.TimestampOID, duckdb.TYPE_TIMESTAMP_S: pgtype.TimestampOID,
	duckdb.TYPE_TIMESTAMP_MS: pgtype.TimestampOID, duckdb.TYPE_TIMESTAMP_NS: pgtype.TimestampOID,
	duckdb.TYPE_TIMESTAMP_TZ: pgtype.TimestamptzOID, duckdb.TYPE_INTERVAL: pgtype.IntervalOID, duckdb.TYPE_UUID: pgtype.UUIDOID,
	duckdb.TYPE_TIME: pgtype.TimeOID,
}

// oidOf is the PostgreSQL type of a DuckDB column type.
func oidOf(t duckdb.Type) uint32 {
	if oid, ok := oids[t]; ok {
		return oid
	}
	return pgtype.TextOID
}

// pgValue turns a value scanned from DuckDB into one pgx's type map
// encodes as the column's PostgreSQL type.
func pgValue(v any, oid uint32) any {
	switch v := v.(type) {
	case nil:
		return nil
	case duckdb.Decimal:
		return pgtype.Numeric{Int: v.Value, Exp: -int32(v.Scale), Valid: true}
	case *big.Int:
		return pgtype.Numeric{Int: v, Valid: true}
	case uint64:
		return pgtype.Numeric{Int: new(big.Int).SetUint64(v), Valid: true}
	case uint8:
		return int16(v)
	case int8:
		return int16(v)
	case uint16:
		return int32(v)
	case uint32:
		return int64(v)
	case duckdb.Interval:
		return pgtype.Interval{Months: v.Months, Days: v.Days, Microseconds: v.Micros, Valid: true}
	case duckdb.UUID:
		return pgtype.UUID{Bytes: v, Valid: true}
	case []byte:
		if oid == pgtype.UUIDOID && len(v) == 16 { // duckdb-go scans UUIDs as bytes
			return pgtype.UUID{Bytes: [16]byte(v), Valid: true}
		}
	}
	if oid == pgtype.TextOID {
		if s, ok := v.(string); ok {
			return s
		}
		return fmt.Sprint(v)
	}
	return v
}

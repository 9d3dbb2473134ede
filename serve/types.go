package serve

import (
	"encoding/json"
	"fmt"
	"math/big"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/medallionlake/medallion/query"
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

// arrayOIDs are the array types of the element types above.
var arrayOIDs = map[uint32]uint32{
	pgtype.BoolOID: pgtype.BoolArrayOID, pgtype.Int2OID: pgtype.Int2ArrayOID, pgtype.Int4OID: pgtype.Int4ArrayOID,
	pgtype.Int8OID: pgtype.Int8ArrayOID, pgtype.Float4OID: pgtype.Float4ArrayOID, pgtype.Float8OID: pgtype.Float8ArrayOID,
	pgtype.NumericOID: pgtype.NumericArrayOID, pgtype.TextOID: pgtype.TextArrayOID, pgtype.ByteaOID: pgtype.ByteaArrayOID,
	pgtype.DateOID: pgtype.DateArrayOID, pgtype.TimestampOID: pgtype.TimestampArrayOID,
	pgtype.TimestamptzOID: pgtype.TimestamptzArrayOID, pgtype.IntervalOID: pgtype.IntervalArrayOID,
	pgtype.UUIDOID: pgtype.UUIDArrayOID, pgtype.TimeOID: pgtype.TimeArrayOID,
}

// elemOIDs maps an array type back to its element type.
var elemOIDs = func() map[uint32]uint32 {
	m := map[uint32]uint32{}
	for elem, arr := range arrayOIDs {
		m[arr] = elem
	}
	return m
}()

// oidOf is the PostgreSQL type of a DuckDB type.
func oidOf(t duckdb.Type) uint32 {
	if oid, ok := oids[t]; ok {
		return oid
	}
	return pgtype.TextOID
}

// columnOID is the PostgreSQL type of a result column: JSON is json, a
// list of a scalar type is that type's array, and nested lists, structs
// and maps go as text (JSON).
func columnOID(c query.Column) uint32 {
	switch {
	case c.JSON:
		return pgtype.JSONOID
	case c.Type == duckdb.TYPE_LIST:
		if elem, ok := oids[c.Elem]; ok {
			return arrayOIDs[elem]
		}
		return pgtype.TextOID
	}
	return oidOf(c.Type)
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
	if elem, ok := elemOIDs[oid]; ok {
		if list, ok := v.([]any); ok {
			out := make([]any, len(list))
			for i, e := range list {
				out[i] = pgValue(e, elem)
			}
			return out
		}
	}
	if oid == pgtype.TextOID || oid == pgtype.JSONOID {
		switch v := v.(type) {
		case string:
			return v
		case []any, map[string]any, duckdb.Map, duckdb.OrderedMap:
			if b, err := json.Marshal(v); err == nil {
				return string(b)
			}
		}
		return fmt.Sprint(v)
	}
	return v
}

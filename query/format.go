package query

import (
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// Formats Write supports; parquet is written by DuckDB itself
// (Session.Export).
var Formats = []string{"table", "csv", "json", "arrow", "parquet"}

// Write prints rows as table, csv (with a header), json (an array of
// objects; numbers stay numbers) or arrow (an Arrow IPC stream). It returns
// the number of rows.
func Write(w io.Writer, rows *sql.Rows, format string) (int, error) {
	if format == "arrow" {
		return writeArrow(w, rows)
	}
	cols, err := rows.ColumnTypes()
	if err != nil {
		return 0, err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name()
	}
	var (
		tw   *tabwriter.Writer
		cw   *csv.Writer
		n    int
		vals = make([]any, len(cols))
		ptrs = make([]any, len(cols))
	)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	switch format {
	case "table":
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(names, "\t"))
	case "csv":
		cw = csv.NewWriter(w)
		if err := cw.Write(names); err != nil {
			return 0, err
		}
	case "json":
		if _, err := io.WriteString(w, "["); err != nil {
			return 0, err
		}
	default:
		return 0, fmt.Errorf("unsupported format %q (want table, csv or json)", format)
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		switch format {
		case "table", "csv":
			cells := make([]string, len(vals))
			for i, v := range vals {
				cells[i] = text(v, cols[i].DatabaseTypeName(), format == "table")
			}
			if tw != nil {
				fmt.Fprintln(tw, strings.Join(cells, "\t"))
			} else if err := cw.Write(cells); err != nil {
				return n, err
			}
		case "json":
			if n > 0 {
				io.WriteString(w, ",")
			}
			io.WriteString(w, "\n  ")
			obj := make(orderedObject, len(vals))
			for i, v := range vals {
				obj[i] = field{names[i], jsonValue(v, cols[i].DatabaseTypeName())}
			}
			b, err := json.Marshal(obj)
			if err != nil {
				return n, err
			}
			if _, err := w.Write(b); err != nil {
				return n, err
			}
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	switch {
	case tw != nil:
		return n, tw.Flush()
	case cw != nil:
		cw.Flush()
		return n, cw.Error()
	case n == 0:
		_, err := io.WriteString(w, "]\n")
		return n, err
	default:
		_, err := io.WriteString(w, "\n]\n")
		return n, err
	}
}

// text renders one value as DuckDB would print it.
func text(v any, dbType string, table bool) string {
	switch x := v.(type) {
	case nil:
		if table {
			return "NULL"
		}
		return ""
	case time.Time:
		return formatTime(x, dbType)
	case duckdb.Decimal:
		return x.String()
	case []byte:
		return fmt.Sprintf("%x", x)
	case string:
		return x
	case fmt.Stringer:
		return x.String()
	case []any, map[string]any, duckdb.Map:
		b, err := json.Marshal(jsonValue(v, dbType))
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
	return fmt.Sprint(v)
}

func formatTime(t time.Time, dbType string) string {
	switch {
	case dbType == "DATE":
		return t.Format("2006-01-02")
	case dbType == "TIME":
		return t.Format("15:04:05.999999")
	case strings.Contains(dbType, "TZ") || strings.Contains(dbType, "TIME ZONE"):
		return t.UTC().Format(time.RFC3339Nano)
	default:
		return t.UTC().Format("2006-01-02 15:04:05.999999")
	}
}

func jsonValue(v any, dbType string) any {
	switch x := v.(type) {
	case time.Time:
		return formatTime(x, dbType)
	case duckdb.Decimal:
		return json.Number(x.String())
	case []byte:
		return fmt.Sprintf("%x", x)
	case duckdb.Map:
		m := map[string]any{}
		for k, val := range x {
			m[fmt.Sprint(k)] = jsonValue(val, "")
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e, "")
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = jsonValue(e, "")
		}
		return out
	}
	return v
}

type field struct {
	name  string
	value any
}

// orderedObject marshals as a JSON object keeping the column order.
type orderedObject []field

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.name)
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

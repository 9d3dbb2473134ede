package silver_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/silver"
)

// The parse helpers read a field's JSON type from its text; each must agree
// with JSON's own types for every kind of value a payload can hold.
func TestMacros(t *testing.T) {
	ctx := context.Background()
	db, err := duck.Open(config.DuckDB{Threads: 1})
	must(t, err)
	defer db.Close()
	conn, err := db.Conn(ctx)
	must(t, err)
	defer conn.Close()
	must(t, silver.Prepare(ctx, conn, medtype.MustDate("2024-01-15")))

	// value: the JSON text of field f (absent when ""); then what each
	// macro returns for it, NULL as "<nil>".
	cases := []struct {
		value                               string
		str, money, double, int, bool, json string
		ts                                  string
		expStr, expNum, expInt              string
		expBool, expList, expTS             string
	}{
		{value: "", str: "<nil>", money: "<nil>", double: "<nil>", int: "<nil>", bool: "<nil>", json: "<nil>", ts: "<nil>",
			expStr: "missing f", expNum: "missing f", expInt: "missing f", expBool: "missing f", expList: "missing f", expTS: "missing f"},
		{value: "null", str: "<nil>", money: "<nil>", double: "<nil>", int: "<nil>", bool: "<nil>", json: "<nil>", ts: "<nil>",
			expStr: "missing f", expNum: "missing f", expInt: "missing f", expBool: "missing f", expList: "missing f", expTS: "missing f"},
		{value: `"Austin"`, str: "Austin", money: "<nil>", double: "<nil>", int: "<nil>", bool: "<nil>", json: `"Austin"`, ts: "<nil>",
			expStr: "<nil>", expNum: "f is not a number", expInt: "f is not an integer", expBool: "f is not a boolean", expList: "f is not a list", expTS: `unparseable f "Austin"`},
		{value: `"caf\u00e9 \"x\" ü"`, str: `café "x" ü`, money: "<nil>", double: "<nil>", int: "<nil>", bool: "<nil>", json: `"café \"x\" ü"`, ts: "<nil>",
			expStr: "<nil>", expNum: "f is not a number", expInt: "f is not an integer", expBool: "f is not a boolean", expList: "f is not a list", expTS: `unparseable f "café "x" ü"`},
		{value: `""`, str: "", money: "<nil>", double: "<nil>", int: "<nil>", bool: "<nil>", json: `""`, ts: "<nil>",
			expStr: "<nil>", expNum: "f is not a number", expInt: "f is not an integer", expBool: "f is not a boolean", expList: "f is not a list", expTS: `unparseable f ""`},
		{value: `"2024-01-15T23:30:00-02:00"`, str: "2024-01-15T23:30:00-02:00", money: "<nil>", double: "<nil>", int: "<nil>", bool: "<nil>", json: `"2024-01-15T23:30:00-02:00"`, ts: "2024-01-16 01:30:00",
			expStr: "<nil>", expNum: "f is not a number", expInt: "f is not an integer", expBool: "f is not a boolean", expList: "f is not a list", expTS: "<nil>"},
		{value: "12", str: "<nil>", money: "12.00", double: "12.0", int: "12", bool: "<nil>", json: "12", ts: "<nil>",
			expStr: "f is not a string", expNum: "<nil>", expInt: "<nil>", expBool: "f is not a boolean", expList: "f is not a list", expTS: "f is not a string"},
		{value: "-0.505", str: "<nil>", money: "-0.51", double: "-0.505", int: "<nil>", bool: "<nil>", json: "-0.505", ts: "<nil>",
			expStr: "f is not a string", expNum: "<nil>", expInt: "f is not an integer", expBool: "f is not a boolean", expList: "f is not a list", expTS: "f is not a string"},
		{value: "1e3", str: "<nil>", money: "1000.00", double: "1000.0", int: "<nil>", bool: "<nil>", json: "1000.0", ts: "<nil>",
			expStr: "f is not a string", expNum: "<nil>", expInt: "f is not an integer", expBool: "f is not a boolean", expList: "f is not a list", expTS: "f is not a string"},
		{value: "true", str: "<nil>", money: "<nil>", double: "<nil>", int: "<nil>", bool: "true", json: "true", ts: "<nil>",
			expStr: "f is not a string", expNum: "f is not a number", expInt: "f is not an integer", expBool: "<nil>", expList: "f is not a list", expTS: "f is not a string"},
		{value: "false", str: "<nil>", money: "<nil>", double: "<nil>", int: "<nil>", bool: "false", json: "false", ts: "<nil>",
			expStr: "f is not a string", expNum: "f is not a number", expInt: "f is not an integer", expBool: "<nil>", expList: "f is not a list", expTS: "f is not a string"},
		{value: `[1, "a"]`, str: "<nil>", money: "<nil>", double: "<nil>", int: "<nil>", bool: "<nil>", json: `[1,"a"]`, ts: "<nil>",
			expStr: "f is not a string", expNum: "f is not a number", expInt: "f is not an integer", expBool: "f is not a boolean", expList: "<nil>", expTS: "f is not a string"},
		{value: `{"k": "v"}`, str: "<nil>", money: "<nil>", double: "<nil>", int: "<nil>", bool: "<nil>", json: `{"k":"v"}`, ts: "<nil>",
			expStr: "f is not a string", expNum: "f is not a number", expInt: "f is not an integer", expBool: "f is not a boolean", expList: "f is not a list", expTS: "f is not a string"},
	}
	for _, c := range cases {
		payload := "{}"
		if c.value != "" {
			payload = `{"f": ` + c.value + `}`
		}
		row := conn.QueryRowContext(ctx, `WITH src AS (SELECT json_transform(?::VARCHAR, '{"f": "JSON"}') AS j)
			SELECT j_str(j.f), j_money(j.f)::VARCHAR, j_double(j.f)::VARCHAR, j_int(j.f)::VARCHAR, j_bool(j.f)::VARCHAR,
			       j_json(j.f), j_ts(j.f)::VARCHAR,
			       expect_str('f', j.f, true), expect_num('f', j.f, true), expect_int('f', j.f, true),
			       expect_bool('f', j.f, true), expect_list('f', j.f, true), expect_ts('f', j.f, true),
			       expect_str('f', j.f, false)
			FROM src`, payload)
		var got [14]sql.NullString
		ptrs := make([]any, len(got))
		for i := range got {
			ptrs[i] = &got[i]
		}
		must(t, row.Scan(ptrs...))
		text := func(s sql.NullString) string {
			if !s.Valid {
				return "<nil>"
			}
			return s.String
		}
		want := []string{c.str, c.money, c.double, c.int, c.bool, c.json, c.ts, c.expStr, c.expNum, c.expInt, c.expBool, c.expList, c.expTS}
		names := []string{"j_str", "j_money", "j_double", "j_int", "j_bool", "j_json", "j_ts", "expect_str", "expect_num", "expect_int", "expect_bool", "expect_list", "expect_ts"}
		for i, w := range want {
			g := text(got[i])
			if g != w {
				t.Errorf("%s(%s) = %q, want %q", names[i], payload, g, w)
			}
		}
		// Optional fields accept absence and null, nothing else changes.
		if opt := text(got[13]); (c.value == "" || c.value == "null") && opt != "<nil>" {
			t.Errorf("expect_str(optional) of %s = %q, want NULL", payload, opt)
		}
	}
}

package query

import (
	"context"
	"database/sql"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/medtype"
)

// Partition pruning: a statement that filters a table on its partition
// column with constant dates (=, <, <=, >, >=, BETWEEN, IN) in the
// top-level WHERE clause, or through an inner join's equality with
// another table so filtered, reads only the files of the partitions
// inside that range, so that a query over a week costs the same in a
// year-old lake as in a new one. DuckDB still applies every filter; the
// range only leaves out files none of whose rows could pass. Anything
// this cannot read with certainty (OR, functions, casts of the column,
// subqueries, a table named twice, unusual joins) prunes nothing.

// tree is one node of DuckDB's parse tree (json_serialize_sql).
type tree = map[string]any

// parse returns the statement's parse tree, or nil when DuckDB does not
// serialise it (anything but SELECT statements).
func parse(ctx context.Context, conn *sql.Conn, stmt string) tree {
	var js string
	if err := conn.QueryRowContext(ctx, "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", stmt).Scan(&js); err != nil {
		return nil
	}
	var t tree
	if json.Unmarshal([]byte(js), &t) != nil || t["error"] != false {
		return nil
	}
	return t
}

// oneSelect is the SELECT node of a tree holding exactly one statement.
func oneSelect(t tree) (tree, bool) {
	stmts, _ := t["statements"].([]any)
	if len(stmts) != 1 {
		return nil, false
	}
	st, _ := stmts[0].(tree)
	node, _ := st["node"].(tree)
	return node, node != nil
}

// shape is what pruning needs to know of a table.
type shape struct {
	partition string
	columns   []string
}

type source struct {
	id    lake.TableID
	alias string
}

type colRef struct {
	id  lake.TableID
	col string
}

// ranges returns, for the tables of the statement's top-level FROM that
// it names once, the range its filters allow on their partition column.
func ranges(stmt string, sel tree, shapes map[lake.TableID]shape) map[lake.TableID]lake.DateRange {
	if sel["type"] != "SELECT_NODE" {
		return nil
	}
	var srcs []source
	var onConds []any
	opaque := false
	if !fromItems(sel["from_table"], &srcs, &onConds, &opaque) {
		return nil
	}
	once := namedOnce(stmt, sel)
	r := &resolver{srcs: srcs, shapes: shapes, opaque: opaque}
	bounds := map[colRef]lake.DateRange{}
	var equal [][2]colRef
	for _, c := range append(conjuncts(sel["where_clause"]), onConds...) {
		if a, b, ok := r.equality(c); ok {
			equal = append(equal, [2]colRef{a, b})
		} else if ref, rng, ok := r.bound(c); ok {
			bounds[ref] = intersect(bounds[ref], rng)
		}
	}
	// Equal columns share their range; one pass per equality reaches
	// along a chain of joins.
	for range equal {
		for _, e := range equal {
			_, a := bounds[e[0]]
			_, b := bounds[e[1]]
			if a || b {
				rng := intersect(bounds[e[0]], bounds[e[1]])
				bounds[e[0]], bounds[e[1]] = rng, rng
			}
		}
	}
	out := map[lake.TableID]lake.DateRange{}
	for ref, rng := range bounds {
		if once[ref.id] && shapes[ref.id].partition == ref.col && (!rng.From.IsZero() || !rng.To.IsZero()) {
			rng.Column = ref.col
			out[ref.id] = rng
		}
	}
	return out
}

// intersect narrows a by b (a zero end is unbounded).
func intersect(a, b lake.DateRange) lake.DateRange {
	if !b.From.IsZero() && (a.From.IsZero() || a.From.Before(b.From)) {
		a.From = b.From
	}
	if !b.To.IsZero() && (a.To.IsZero() || b.To.Before(a.To)) {
		a.To = b.To
	}
	return a
}

// fromItems collects the base tables of a FROM clause joined by plain
// joins, and the conditions of its inner joins; it returns false for a
// join whose rows a filter could change by removing rows of one side
// (ASOF, SEMI, ANTI, POSITIONAL, ...). Subqueries, table functions and the
// like are skipped but make unqualified columns ambiguous (opaque).
func fromItems(v any, srcs *[]source, conds *[]any, opaque *bool) bool {
	n, _ := v.(tree)
	switch n["type"] {
	case "BASE_TABLE":
		if n["catalog_name"] != "" || n["at_clause"] != nil {
			*opaque = true
			return true
		}
		id := lake.TableID{Namespace: strings.ToLower(str(n["schema_name"])), Name: strings.ToLower(str(n["table_name"]))}
		alias := str(n["alias"])
		if alias == "" {
			alias = id.Name
		}
		*srcs = append(*srcs, source{id: id, alias: strings.ToLower(alias)})
		return true
	case "JOIN":
		ref, typ := str(n["ref_type"]), str(n["join_type"])
		if (ref != "REGULAR" && ref != "CROSS") || !map[string]bool{"INNER": true, "LEFT": true, "RIGHT": true, "OUTER": true}[typ] {
			return false
		}
		if typ == "INNER" {
			*conds = append(*conds, conjuncts(n["condition"])...)
		}
		return fromItems(n["left"], srcs, conds, opaque) && fromItems(n["right"], srcs, conds, opaque)
	case "EMPTY":
		return true
	}
	*opaque = true
	return true
}

// conjuncts splits an expression at its top-level ANDs.
func conjuncts(v any) []any {
	n, ok := v.(tree)
	if !ok {
		return nil
	}
	if n["type"] == "CONJUNCTION_AND" {
		var out []any
		for _, c := range n["children"].([]any) {
			out = append(out, conjuncts(c)...)
		}
		return out
	}
	return []any{n}
}

type resolver struct {
	srcs   []source
	shapes map[lake.TableID]shape
	opaque bool
}

// column resolves a column reference to a top-level table's column.
func (r *resolver) column(v any) (colRef, bool) {
	n, _ := v.(tree)
	if n["type"] != "COLUMN_REF" {
		return colRef{}, false
	}
	var names []string
	for _, x := range n["column_names"].([]any) {
		names = append(names, strings.ToLower(str(x)))
	}
	col := names[len(names)-1]
	var found []lake.TableID
	for _, s := range r.srcs {
		switch len(names) {
		case 1:
			if !r.opaque && hasColumn(r.shapes[s.id].columns, col) {
				found = append(found, s.id)
			}
		case 2:
			if s.alias == names[0] {
				found = append(found, s.id)
			}
		case 3:
			if s.id.Namespace == names[0] && s.id.Name == names[1] && s.alias == s.id.Name {
				found = append(found, s.id)
			}
		}
	}
	if len(found) != 1 {
		return colRef{}, false
	}
	return colRef{id: found[0], col: col}, true
}

func hasColumn(cols []string, col string) bool {
	for _, c := range cols {
		if strings.ToLower(c) == col {
			return true
		}
	}
	return false
}

// equality reads "a = b" between two partition columns.
func (r *resolver) equality(v any) (colRef, colRef, bool) {
	n, _ := v.(tree)
	if n["type"] != "COMPARE_EQUAL" {
		return colRef{}, colRef{}, false
	}
	a, okA := r.column(n["left"])
	b, okB := r.column(n["right"])
	if !okA || !okB || r.shapes[a.id].partition != a.col || r.shapes[b.id].partition != b.col {
		return colRef{}, colRef{}, false
	}
	return a, b, true
}

// bound reads a comparison of a column with constant dates.
func (r *resolver) bound(v any) (colRef, lake.DateRange, bool) {
	n, _ := v.(tree)
	switch n["type"] {
	case "COMPARE_BETWEEN":
		ref, ok := r.column(n["input"])
		lo, okLo := date(n["lower"])
		hi, okHi := date(n["upper"])
		return ref, lake.DateRange{From: lo, To: hi}, ok && okLo && okHi
	case "COMPARE_IN":
		kids, _ := n["children"].([]any)
		if len(kids) < 2 {
			return colRef{}, lake.DateRange{}, false
		}
		ref, ok := r.column(kids[0])
		var rng lake.DateRange
		for _, k := range kids[1:] {
			d, okD := date(k)
			if !okD {
				return colRef{}, lake.DateRange{}, false
			}
			if rng.From.IsZero() || d.Before(rng.From) {
				rng.From = d
			}
			if rng.To.IsZero() || rng.To.Before(d) {
				rng.To = d
			}
		}
		return ref, rng, ok
	}
	op := str(n["type"])
	ref, ok := r.column(n["left"])
	d, okD := date(n["right"])
	if !ok || !okD {
		if ref, ok = r.column(n["right"]); !ok {
			return colRef{}, lake.DateRange{}, false
		}
		if d, okD = date(n["left"]); !okD {
			return colRef{}, lake.DateRange{}, false
		}
		op = flipped[op]
	}
	var rng lake.DateRange
	switch op {
	case "COMPARE_EQUAL":
		rng.From, rng.To = d, d
	case "COMPARE_GREATERTHAN":
		rng.From = d.AddDays(1)
	case "COMPARE_GREATERTHANOREQUALTO":
		rng.From = d
	case "COMPARE_LESSTHAN":
		rng.To = d.AddDays(-1)
	case "COMPARE_LESSTHANOREQUALTO":
		rng.To = d
	default:
		return colRef{}, lake.DateRange{}, false
	}
	return ref, rng, true
}

var flipped = map[string]string{
	"COMPARE_EQUAL": "COMPARE_EQUAL", "COMPARE_GREATERTHAN": "COMPARE_LESSTHAN", "COMPARE_LESSTHAN": "COMPARE_GREATERTHAN",
	"COMPARE_GREATERTHANOREQUALTO": "COMPARE_LESSTHANOREQUALTO", "COMPARE_LESSTHANOREQUALTO": "COMPARE_GREATERTHANOREQUALTO",
}

var isoDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// date reads a date constant: 'YYYY-MM-DD', DATE 'YYYY-MM-DD' or a cast
// of such a string to DATE.
func date(v any) (medtype.Date, bool) {
	n, _ := v.(tree)
	if n["type"] == "OPERATOR_CAST" {
		ct, _ := n["cast_type"].(tree)
		if ct["id"] != "DATE" || n["try_cast"] != false {
			return medtype.Date{}, false
		}
		n, _ = n["child"].(tree)
	}
	if n["type"] != "VALUE_CONSTANT" {
		return medtype.Date{}, false
	}
	val, _ := n["value"].(tree)
	typ, _ := val["type"].(tree)
	s, ok := val["value"].(string)
	if typ["id"] != "VARCHAR" || !ok || !isoDate.MatchString(s) {
		return medtype.Date{}, false
	}
	d, err := medtype.ParseDate(s)
	return d, err == nil
}

// namedOnce are the tables the statement names exactly once, both in its
// text and in its parse tree (a table named twice, even in a string or a
// subquery, is read whole: its view serves every mention).
func namedOnce(stmt string, sel tree) map[lake.TableID]bool {
	text := map[lake.TableID]int{}
	for _, m := range tableRef.FindAllStringSubmatch(stmt, -1) {
		text[lake.TableID{Namespace: strings.ToLower(m[1]), Name: strings.ToLower(m[2])}]++
	}
	parsed := map[lake.TableID]int{}
	countTables(sel, parsed)
	out := map[lake.TableID]bool{}
	for id, n := range parsed {
		if n == 1 && text[id] == 1 {
			out[id] = true
		}
	}
	return out
}

func countTables(v any, counts map[lake.TableID]int) {
	switch n := v.(type) {
	case tree:
		if n["type"] == "BASE_TABLE" {
			counts[lake.TableID{Namespace: strings.ToLower(str(n["schema_name"])), Name: strings.ToLower(str(n["table_name"]))}]++
		}
		for _, c := range n {
			countTables(c, counts)
		}
	case []any:
		for _, c := range n {
			countTables(c, counts)
		}
	}
}

func str(v any) string { s, _ := v.(string); return s }

package serve

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/query"
)

// The catalog queries of psql (\dn, \dt, \d) and of BI tools (schema,
// table and column listings) read PostgreSQL's pg_catalog and
// information_schema. DuckDB's own versions of those describe DuckDB, not
// the lake, and lack relations and functions psql uses; so each session
// gets its own small PostgreSQL-shaped catalog, filled from the lake's
// tables, and catalog statements are rewritten to read it. Relations the
// lake never has rows for (policies, publications, inheritance, indexes)
// exist empty, so that psql's queries about them answer nothing.

// catalogRef finds a statement about the catalog.
var catalogRef = regexp.MustCompile(`(?i)\b(pg_catalog|information_schema)\s*\.|\bpg_[a-z_]+\b`)

// isCatalogQuery: the statement reads the catalog and no lake table.
func isCatalogQuery(stmt string) bool {
	return catalogRef.MatchString(stmt) && len(query.TablesIn(stmt)) == 0
}

var rewrites = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?i)OPERATOR\s*\(\s*pg_catalog\s*\.\s*([^)\s]+)\s*\)`), "$1"},
	{regexp.MustCompile(`(?i)\s+COLLATE\s+(pg_catalog\s*\.\s*)?"?default"?`), ""},
	{regexp.MustCompile(`(?i)::\s*(pg_catalog\s*\.\s*)?(regclass|regtype|regnamespace|regproc|regprocedure|regrole)\b`), "::VARCHAR"},
	{regexp.MustCompile(`(?i)::\s*(pg_catalog\s*\.\s*)?oid\b`), "::BIGINT"},
	{regexp.MustCompile(`(?i)\bpg_catalog\s*\.\s*`), ""},
	{regexp.MustCompile(`(?i)\bjson_build_object\s*\(`), "json_object("},
	// x = ANY(array column): DuckDB reads ANY as a subquery, which an outer
	// join's ON cannot hold.
	{regexp.MustCompile(`(?i)([\w."]+)\s*=\s*any\s*\(\s*([\w."]+)\s*\)`), "list_contains($2, $1)"},
	{regexp.MustCompile(`(?i)\binformation_schema\s*\.\s*`), infoSchema + "."},
}

// neverRows finds the relations the lake has no rows for: a catalog
// statement about them that DuckDB cannot bind answers no rows.
var neverRows = regexp.MustCompile(`(?i)\bpg_(publication|policy|statistic_ext|inherits|trigger|rewrite|index|constraint)\b`)

// infoSchema holds the session's information_schema (DuckDB reserves the
// name itself).
const infoSchema = "pg_information_schema"

// rewriteCatalogQuery points a catalog statement at the session's
// PostgreSQL-shaped catalog.
func rewriteCatalogQuery(stmt string) string {
	for _, r := range rewrites {
		stmt = r.re.ReplaceAllString(stmt, r.with)
	}
	return stmt
}

// catalogDDL creates the session's catalog relations and functions, in the
// session's own DuckDB catalog (query.Session), where unqualified names
// resolve before DuckDB's.
var catalogDDL = []string{
	`CREATE TABLE pg_namespace (oid BIGINT, nspname VARCHAR, nspowner BIGINT, nspacl VARCHAR[])`,
	`CREATE TABLE pg_class (oid BIGINT, relname VARCHAR, relnamespace BIGINT, relkind VARCHAR, relowner BIGINT, relam BIGINT,
		relchecks SMALLINT, relhasindex BOOLEAN, relhasrules BOOLEAN, relhastriggers BOOLEAN, relrowsecurity BOOLEAN,
		relforcerowsecurity BOOLEAN, relispartition BOOLEAN, reltablespace BIGINT, reloftype BIGINT, relpersistence VARCHAR,
		relreplident VARCHAR, reltoastrelid BIGINT, relpartbound VARCHAR, reltuples FLOAT, relpages INTEGER, relnatts SMALLINT,
		relacl VARCHAR[], reloptions VARCHAR[], relhassubclass BOOLEAN, relisshared BOOLEAN, reltype BIGINT)`,
	`CREATE TABLE pg_attribute (attrelid BIGINT, attname VARCHAR, atttypid BIGINT, atttypmod INTEGER, attnum SMALLINT,
		attnotnull BOOLEAN, attisdropped BOOLEAN, atthasdef BOOLEAN, attcollation BIGINT, attidentity VARCHAR,
		attgenerated VARCHAR, attlen SMALLINT, attndims SMALLINT, attstattarget INTEGER, attstorage VARCHAR, attacl VARCHAR[],
		attoptions VARCHAR[], attfdwoptions VARCHAR[], atthasmissing BOOLEAN, attislocal BOOLEAN, attinhcount INTEGER,
		attcompression VARCHAR)`,
	`CREATE TABLE pg_type (oid BIGINT, typname VARCHAR, typnamespace BIGINT, typowner BIGINT, typlen SMALLINT, typtype VARCHAR,
		typcategory VARCHAR, typrelid BIGINT, typelem BIGINT, typarray BIGINT, typbasetype BIGINT, typtypmod INTEGER,
		typnotnull BOOLEAN, typcollation BIGINT, typdelim VARCHAR, typinput VARCHAR, typoutput VARCHAR, typisdefined BOOLEAN,
		typdefault VARCHAR)`,
	`CREATE TABLE pg_enum (oid BIGINT, enumtypid BIGINT, enumsortorder FLOAT, enumlabel VARCHAR)`,
	`CREATE TABLE pg_am (oid BIGINT, amname VARCHAR, amtype VARCHAR)`,
	`CREATE TABLE pg_attrdef (oid BIGINT, adrelid BIGINT, adnum SMALLINT, adbin VARCHAR)`,
	`CREATE TABLE pg_collation (oid BIGINT, collname VARCHAR, collnamespace BIGINT)`,
	`CREATE TABLE pg_roles (oid BIGINT, rolname VARCHAR, rolsuper BOOLEAN, rolcanlogin BOOLEAN)`,
	`CREATE TABLE pg_user (usesysid BIGINT, usename VARCHAR, usesuper BOOLEAN)`,
	`CREATE TABLE pg_database (oid BIGINT, datname VARCHAR, datdba BIGINT, encoding INTEGER, datcollate VARCHAR,
		datctype VARCHAR, datallowconn BOOLEAN, datistemplate BOOLEAN, datacl VARCHAR[], daticulocale VARCHAR,
		datlocprovider VARCHAR)`,
	`CREATE TABLE pg_description (objoid BIGINT, classoid BIGINT, objsubid INTEGER, description VARCHAR)`,
	`CREATE TABLE pg_index (indexrelid BIGINT, indrelid BIGINT, indnatts SMALLINT, indisunique BOOLEAN, indisprimary BOOLEAN,
		indisclustered BOOLEAN, indisvalid BOOLEAN, indisreplident BOOLEAN, indkey SMALLINT[], indexprs VARCHAR, indpred VARCHAR,
		indoption SMALLINT[], indnkeyatts SMALLINT)`,
	`CREATE TABLE pg_constraint (oid BIGINT, conname VARCHAR, connamespace BIGINT, contype VARCHAR, conrelid BIGINT,
		confrelid BIGINT, conkey SMALLINT[], confkey SMALLINT[], conindid BIGINT, convalidated BOOLEAN)`,
	`CREATE TABLE pg_policy (oid BIGINT, polname VARCHAR, polrelid BIGINT, polcmd VARCHAR, polpermissive BOOLEAN,
		polroles BIGINT[], polqual VARCHAR, polwithcheck VARCHAR)`,
	`CREATE TABLE pg_statistic_ext (oid BIGINT, stxrelid BIGINT, stxname VARCHAR, stxnamespace BIGINT, stxkind VARCHAR[],
		stxstattarget INTEGER)`,
	`CREATE TABLE pg_publication (oid BIGINT, pubname VARCHAR, puballtables BOOLEAN)`,
	`CREATE TABLE pg_publication_namespace (oid BIGINT, pnpubid BIGINT, pnnspid BIGINT)`,
	`CREATE TABLE pg_publication_rel (oid BIGINT, prpubid BIGINT, prrelid BIGINT, prqual VARCHAR, prattrs SMALLINT[])`,
	`CREATE TABLE pg_sequence (seqrelid BIGINT, seqtypid BIGINT, seqstart BIGINT, seqincrement BIGINT, seqmax BIGINT,
		seqmin BIGINT, seqcache BIGINT, seqcycle BOOLEAN)`,
	`CREATE TABLE pg_inherits (inhrelid BIGINT, inhparent BIGINT, inhseqno INTEGER, inhdetachpending BOOLEAN)`,
	`CREATE TABLE pg_trigger (oid BIGINT, tgrelid BIGINT, tgname VARCHAR, tgisinternal BOOLEAN, tgenabled VARCHAR)`,
	`CREATE TABLE pg_rewrite (oid BIGINT, rulename VARCHAR, ev_class BIGINT)`,
	`CREATE TABLE pg_proc (oid BIGINT, proname VARCHAR, pronamespace BIGINT)`,
	`CREATE TABLE pg_settings (name VARCHAR, setting VARCHAR)`,
	`CREATE SCHEMA ` + infoSchema,
	`CREATE TABLE ` + infoSchema + `.schemata (catalog_name VARCHAR, schema_name VARCHAR, schema_owner VARCHAR)`,
	`CREATE TABLE ` + infoSchema + `.tables (table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR,
		table_type VARCHAR, is_insertable_into VARCHAR)`,
	`CREATE TABLE ` + infoSchema + `.columns (table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR,
		column_name VARCHAR, ordinal_position INTEGER, column_default VARCHAR, is_nullable VARCHAR, data_type VARCHAR,
		character_maximum_length INTEGER, numeric_precision INTEGER, numeric_scale INTEGER, datetime_precision INTEGER,
		udt_name VARCHAR)`,
	// pgjdbc's getPrimaryKeys expands pg_index.indkey with it; the lake has
	// no index, so its shape is all that matters.
	`CREATE MACRO ` + infoSchema + `._pg_expandarray(a) AS {'x': NULL::BIGINT, 'n': NULL::INTEGER}`,
	`CREATE TABLE ` + infoSchema + `.views (table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR, view_definition VARCHAR)`,
	`CREATE MACRO pg_get_userbyid(id) AS 'medallion'`,
	// Drivers read the server's version from version(): PostgreSQL's form.
	`CREATE MACRO version() AS 'PostgreSQL 15.0 (Medallion, on DuckDB) on x86_64-pc-linux-gnu, 64-bit'`,
	`CREATE MACRO pg_table_is_visible(id) AS true`,
	`CREATE MACRO pg_type_is_visible(id) AS true`,
	`CREATE MACRO pg_get_expr(e, r) AS NULL::VARCHAR, (e, r, pretty) AS NULL::VARCHAR`,
	`CREATE MACRO pg_get_indexdef(i) AS NULL::VARCHAR, (i, c, pretty) AS NULL::VARCHAR`,
	`CREATE MACRO pg_get_constraintdef(c) AS NULL::VARCHAR, (c, pretty) AS NULL::VARCHAR`,
	`CREATE MACRO pg_get_viewdef(v) AS NULL::VARCHAR, (v, pretty) AS NULL::VARCHAR`,
	`CREATE MACRO pg_get_statisticsobjdef_columns(id) AS NULL::VARCHAR`,
	`CREATE MACRO pg_relation_is_publishable(id) AS false`,
	`CREATE MACRO pg_get_serial_sequence(t, c) AS NULL::VARCHAR`,
	`CREATE MACRO obj_description(id) AS NULL::VARCHAR, (id, cat) AS NULL::VARCHAR`,
	`CREATE MACRO col_description(id, n) AS NULL::VARCHAR`,
	`CREATE MACRO shobj_description(id, cat) AS NULL::VARCHAR`,
	`CREATE MACRO pg_encoding_to_char(e) AS 'UTF8'`,
	`CREATE MACRO array_upper(a, d) AS len(a)`,
	`CREATE MACRO pg_table_size(id) AS NULL::BIGINT`,
	`CREATE MACRO pg_total_relation_size(id) AS NULL::BIGINT`,
	`CREATE MACRO pg_relation_size(id) AS NULL::BIGINT`,
	`CREATE MACRO pg_size_pretty(b) AS format_bytes(b)`,
	`CREATE MACRO array_lower(a, d) AS CASE WHEN len(a) > 0 THEN 1 END`,
	`CREATE MACRO format_type(t, m) AS CASE
		WHEN t = 1700 AND m > 4 THEN 'numeric(' || ((m - 4) // 65536) || ',' || ((m - 4) % 65536) || ')'
		ELSE (SELECT any_value(display) FROM pg_medallion_types WHERE oid = t) END`,
	`CREATE TABLE pg_medallion_types (oid BIGINT, typname VARCHAR, display VARCHAR, len SMALLINT, category VARCHAR)`,
	`INSERT INTO pg_medallion_types VALUES ` + pgTypeRows(),
	`INSERT INTO pg_type SELECT oid, typname, ` + strconv.Itoa(oidPgCatalog) + `, 10, len, 'b', category, 0, 0, 0, 0, -1, false,
		CASE WHEN typname = 'text' THEN 100 ELSE 0 END, ',', typname || 'in', typname || 'out', true, NULL FROM pg_medallion_types`,
	`INSERT INTO pg_am VALUES (2, 'heap', 't')`,
	`INSERT INTO pg_collation VALUES (100, 'default', ` + strconv.Itoa(oidPgCatalog) + `)`,
	`INSERT INTO pg_roles VALUES (10, 'medallion', false, true)`,
	`INSERT INTO pg_user VALUES (10, 'medallion', false)`,
	`INSERT INTO pg_database VALUES (16384, 'medallion', 10, 6, 'C.UTF-8', 'C.UTF-8', true, false, NULL, NULL, 'c')`,
}

const oidPgCatalog = 11

// pgType is how a lake column's DuckDB type shows in PostgreSQL's catalog.
type pgType struct {
	oid      int
	name     string // pg_type.typname
	display  string // format_type's answer, and information_schema's data_type
	len      int
	category string
}

var pgTypes = map[string]pgType{
	"BOOLEAN":     {16, "bool", "boolean", 1, "B"},
	"INTEGER":     {23, "int4", "integer", 4, "N"},
	"BIGINT":      {20, "int8", "bigint", 8, "N"},
	"FLOAT":       {700, "float4", "real", 4, "N"},
	"DOUBLE":      {701, "float8", "double precision", 8, "N"},
	"VARCHAR":     {25, "text", "text", -1, "S"},
	"BLOB":        {17, "bytea", "bytea", -1, "U"},
	"DATE":        {1082, "date", "date", 4, "D"},
	"TIME":        {1083, "time", "time without time zone", 8, "D"},
	"TIMESTAMP":   {1114, "timestamp", "timestamp without time zone", 8, "D"},
	"TIMESTAMPTZ": {1184, "timestamptz", "timestamp with time zone", 8, "D"},
	"UUID":        {2950, "uuid", "uuid", 16, "U"},
	"DECIMAL":     {1700, "numeric", "numeric", -1, "N"},
}

func pgTypeRows() string {
	var rows []string
	for _, t := range pgTypes {
		rows = append(rows, fmt.Sprintf("(%d, %s, %s, %d, %s)", t.oid, duck.Literal(t.name), duck.Literal(t.display), t.len, duck.Literal(t.category)))
	}
	return strings.Join(rows, ", ")
}

// pgTypeOf is a DuckDB column type's PostgreSQL type and type modifier
// (for numeric, PostgreSQL's ((precision << 16) | scale) + 4).
func pgTypeOf(duckType string) (pgType, int, int, int) {
	var p, s int
	if _, err := fmt.Sscanf(duckType, "DECIMAL(%d,%d)", &p, &s); err == nil {
		return pgTypes["DECIMAL"], (p<<16 | s) + 4, p, s
	}
	if t, ok := pgTypes[duckType]; ok {
		return t, -1, 0, 0
	}
	return pgTypes["VARCHAR"], -1, 0, 0
}

// objectOID gives a schema or table a stable oid from its name, so that
// an oid psql read in one statement names the same table in the next.
func objectOID(name string) int64 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return 16384 + int64(h.Sum32()%(1<<30))
}

// catalogTTL is how long the lake's tables, as the catalogs show them,
// are reused before they are read again.
const catalogTTL = 5 * time.Second

// lakeCatalog reads the lake's tables for every session's catalog, at
// most once per catalogTTL: the rows are the same for all sessions.
type lakeCatalog struct {
	lake  *lake.Lake
	mu    sync.Mutex
	at    time.Time // when stmts were read
	stmts []string
}

// statements returns the statements that fill a catalog, and when they
// were read.
func (lc *lakeCatalog) statements(ctx context.Context) ([]string, time.Time, error) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.stmts == nil || time.Since(lc.at) >= catalogTTL {
		stmts, err := fill(ctx, lc.lake)
		if err != nil {
			return nil, time.Time{}, err
		}
		lc.stmts, lc.at = stmts, time.Now()
	}
	return lc.stmts, lc.at, nil
}

// catalog is one session's PostgreSQL-shaped catalog.
type catalog struct {
	conn    *sql.Conn
	src     *lakeCatalog
	created bool
	filled  time.Time // the src reading the catalog holds
}

// load creates the catalog on first use and refills it whenever the
// lake's tables were read again.
func (c *catalog) load(ctx context.Context) error {
	if !c.created {
		for _, stmt := range catalogDDL {
			if _, err := c.conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("serve: catalog: %w", err)
			}
		}
		c.created = true
	}
	stmts, at, err := c.src.statements(ctx)
	if err != nil || at.Equal(c.filled) {
		return err
	}
	for _, stmt := range stmts {
		if _, err := c.conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("serve: catalog: %w", err)
		}
	}
	c.filled = at
	return nil
}

// catalogRows are the VALUES rows of the catalog relations about the
// lake, by relation.
type catalogRows map[string][]string

// fill returns the statements that replace the catalog's rows about the
// lake's namespaces, tables and columns.
func fill(ctx context.Context, l *lake.Lake) ([]string, error) {
	ids, err := l.AllTables(ctx)
	if err != nil {
		return nil, err
	}
	rows := catalogRows{}
	for _, ns := range lake.Namespaces {
		rows.add("pg_namespace", "(%d, %s, 10, NULL)", objectOID(ns), duck.Literal(ns))
		rows.add(infoSchema+".schemata", "('medallion', %s, 'medallion')", duck.Literal(ns))
	}
	for _, id := range ids {
		r, err := l.Reader(ctx, id, lake.Snapshot{})
		if err != nil {
			return nil, err
		}
		cols, required, err := r.Schema()
		if err != nil {
			return nil, err
		}
		rows.table(id, cols, required)
	}
	var stmts []string
	for _, rel := range []string{"pg_namespace", "pg_class", "pg_attribute", infoSchema + ".schemata", infoSchema + ".tables", infoSchema + ".columns"} {
		stmts = append(stmts, "DELETE FROM "+rel)
		if len(rows[rel]) > 0 {
			stmts = append(stmts, "INSERT INTO "+rel+" VALUES "+strings.Join(rows[rel], ", "))
		}
	}
	return stmts, nil
}

func (rows catalogRows) add(rel, format string, args ...any) {
	rows[rel] = append(rows[rel], fmt.Sprintf(format, args...))
}

// table adds one lake table and its columns.
func (rows catalogRows) table(id lake.TableID, cols []duck.Column, required []bool) {
	oid, ns, name := objectOID(id.String()), duck.Literal(id.Namespace), duck.Literal(id.Name)
	rows.add("pg_class", "(%d, %s, %d, 'r', 10, 2, 0, false, false, false, false, false, false, 0, 0, 'p', 'd', 0, NULL, -1, 0, %d, NULL, NULL, false, false, 0)",
		oid, name, objectOID(id.Namespace), len(cols))
	rows.add(infoSchema+".tables", "('medallion', %s, %s, 'BASE TABLE', 'NO')", ns, name)
	for i, col := range cols {
		t, mod, p, s := pgTypeOf(col.Type)
		rows.add("pg_attribute", "(%d, %s, %d, %d, %d, %t, false, false, %d, '', '', %d, 0, -1, 'p', NULL, NULL, NULL, false, true, 0, '')",
			oid, duck.Literal(col.Name), t.oid, mod, i+1, required[i], collation(t), t.len)
		nullable, prec, scale := "YES", "NULL", "NULL"
		if required[i] {
			nullable = "NO"
		}
		if t.oid == 1700 {
			prec, scale = strconv.Itoa(p), strconv.Itoa(s)
		}
		rows.add(infoSchema+".columns", "('medallion', %s, %s, %s, %d, NULL, '%s', %s, NULL, %s, %s, NULL, %s)",
			ns, name, duck.Literal(col.Name), i+1, nullable, duck.Literal(t.display), prec, scale, duck.Literal(t.name))
	}
}

// collation is a column's pg_attribute.attcollation: text is collatable.
func collation(t pgType) int {
	if t.oid == 25 {
		return 100
	}
	return 0
}

// Package querytest holds what the tests of query's sandbox share.
package querytest

// Escapes are statements that try to get out of the query sandbox: read
// or write files (the lake's own bronze, warehouse and metadata files
// included), attach databases, install or load extensions, loosen the
// settings, create objects, or smuggle a second statement. Each must be
// refused without effect. lakeDir is the lake's storage folder,
// metadataFile one of its tables' metadata files, and target a path in a
// folder that must stay empty.
func Escapes(lakeDir, metadataFile, target string) []string {
	return []string{
		"SELECT * FROM read_csv('/etc/passwd')",
		"SELECT * FROM read_text('/etc/hostname')",
		"SELECT * FROM glob('/*')",
		"SELECT count(*) FROM read_parquet('" + lakeDir + "/bronze/**/*.parquet')",
		"SELECT count(*) FROM read_parquet('" + lakeDir + "/warehouse/gold/orders_daily/data/**/*.parquet')",
		"SELECT * FROM read_json('" + metadataFile + "')",
		"SELECT * FROM gold.orders_daily, read_csv('/etc/passwd')",
		"COPY (SELECT 1) TO '" + target + "'",
		"COPY gold.orders_daily TO '" + target + "' (FORMAT parquet)",
		"EXPORT DATABASE '" + target + "'",
		"ATTACH '" + target + "'",
		"ATTACH '" + target + "' (TYPE sqlite)",
		"ATTACH ':memory:' AS m",
		"INSTALL sqlite",
		"LOAD sqlite",
		"SET enable_external_access = true",
		"SET allowed_directories = ['/']",
		"RESET lock_configuration",
		"CREATE TABLE t AS SELECT 1 AS a",
		"CREATE MACRO m(x) AS x",
		"SELECT 1; COPY (SELECT 1) TO '" + target + "'",
		"CALL pragma_version()",
	}
}

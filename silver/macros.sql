-- Helpers for a domain's parse.sql. j is the text of a JSON value (a field
-- of json_transform(payload, '{"field": "JSON", ...}')); NULL means the
-- field is absent or null. The expect_ macros return why a field is
-- invalid, or NULL. The first character of a JSON value's text tells its
-- type ('"' string, '[' list, '{' object, '-' or a digit number), which is
-- several times cheaper than json_type on every field of every row.
CREATE OR REPLACE TEMP MACRO is_object(p) AS CASE WHEN json_valid(p) THEN json_type(p) = 'OBJECT' ELSE false END;
CREATE OR REPLACE TEMP MACRO j_missing(j) AS j IS NULL OR CAST(j AS VARCHAR) = 'null';
CREATE OR REPLACE TEMP MACRO j_isstr(j) AS ascii(CAST(j AS VARCHAR)) = 34;
CREATE OR REPLACE TEMP MACRO j_isnum(j) AS ascii(CAST(j AS VARCHAR)) IN (45, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57);
CREATE OR REPLACE TEMP MACRO j_islist(j) AS ascii(CAST(j AS VARCHAR)) = 91;
CREATE OR REPLACE TEMP MACRO j_str(j) AS CASE WHEN j_isstr(j) THEN
    CASE WHEN contains(CAST(j AS VARCHAR), '\') THEN j ->> '$' ELSE CAST(j AS VARCHAR)[2:-2] END END;
CREATE OR REPLACE TEMP MACRO j_money(j) AS CASE WHEN j_isnum(j) THEN TRY_CAST(CAST(j AS VARCHAR) AS DECIMAL(12, 2)) END;
CREATE OR REPLACE TEMP MACRO j_double(j) AS CASE WHEN j_isnum(j) THEN TRY_CAST(CAST(j AS VARCHAR) AS DOUBLE) END;
CREATE OR REPLACE TEMP MACRO j_int(j) AS CASE WHEN json_type(j) IN ('BIGINT', 'UBIGINT') THEN TRY_CAST(CAST(j AS VARCHAR) AS BIGINT) END;
CREATE OR REPLACE TEMP MACRO j_bool(j) AS CASE WHEN CAST(j AS VARCHAR) IN ('true', 'false') THEN CAST(j AS VARCHAR) = 'true' END;
CREATE OR REPLACE TEMP MACRO j_json(j) AS CASE WHEN NOT j_missing(j) THEN CAST(j AS VARCHAR) END;
CREATE OR REPLACE TEMP MACRO parse_ts(s) AS CAST(TRY_CAST(s AS TIMESTAMPTZ) AS TIMESTAMP);
CREATE OR REPLACE TEMP MACRO j_ts(j) AS parse_ts(j_str(j));
CREATE OR REPLACE TEMP MACRO expect_str(name, j, required) AS CASE
    WHEN j_missing(j) THEN CASE WHEN required THEN 'missing ' || name END
    WHEN NOT j_isstr(j) THEN name || ' is not a string' END;
CREATE OR REPLACE TEMP MACRO expect_num(name, j, required) AS CASE
    WHEN j_missing(j) THEN CASE WHEN required THEN 'missing ' || name END
    WHEN NOT j_isnum(j) THEN name || ' is not a number' END;
CREATE OR REPLACE TEMP MACRO expect_int(name, j, required) AS CASE
    WHEN j_missing(j) THEN CASE WHEN required THEN 'missing ' || name END
    WHEN json_type(j) NOT IN ('BIGINT', 'UBIGINT') THEN name || ' is not an integer' END;
CREATE OR REPLACE TEMP MACRO expect_bool(name, j, required) AS CASE
    WHEN j_missing(j) THEN CASE WHEN required THEN 'missing ' || name END
    WHEN CAST(j AS VARCHAR) NOT IN ('true', 'false') THEN name || ' is not a boolean' END;
CREATE OR REPLACE TEMP MACRO expect_list(name, j, required) AS CASE
    WHEN j_missing(j) THEN CASE WHEN required THEN 'missing ' || name END
    WHEN NOT j_islist(j) THEN name || ' is not a list' END;
CREATE OR REPLACE TEMP MACRO expect_ts(name, j, required) AS CASE
    WHEN j_missing(j) THEN CASE WHEN required THEN 'missing ' || name END
    WHEN NOT j_isstr(j) THEN name || ' is not a string'
    WHEN j_ts(j) IS NULL THEN 'unparseable ' || name || ' "' || j_str(j) || '"' END;
CREATE OR REPLACE TEMP MACRO expect_enum(name, j, allowed, required) AS CASE
    WHEN j_missing(j) THEN CASE WHEN required THEN 'missing ' || name END
    WHEN NOT j_isstr(j) THEN name || ' is not a string'
    WHEN NOT list_contains(allowed, j_str(j)) THEN 'unknown ' || name || ' "' || j_str(j) || '"' END;

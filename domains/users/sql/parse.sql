-- users: a daily incremental extract. Required: user_id, email (or, masked
-- at the source, email_sha256 and email_domain), signup_ts, updated_at. The
-- raw email never leaves bronze: parse keeps only the hex SHA-256 of its
-- trimmed, lower-cased form and its domain, and quarantined payloads have
-- emails masked.
WITH src AS (
    SELECT *,
        CASE WHEN is_object(payload) THEN json_transform(payload, '{
            "user_id": "JSON", "email": "JSON", "email_sha256": "JSON", "email_domain": "JSON", "name": "JSON", "city": "JSON", "signup_ts": "JSON",
            "updated_at": "JSON", "is_test_account": "JSON", "year_of_birth": "JSON"}') END AS j
    FROM bronze
)
SELECT
    CAST(j_ts(j.updated_at) AS DATE) AS snapshot_date,
    j_str(j.user_id)                 AS user_id,
    coalesce(j_str(j.email_sha256), sha256(lower(trim(j_str(j.email)))))          AS email_sha256,
    coalesce(j_str(j.email_domain), split_part(lower(trim(j_str(j.email))), '@', 2)) AS email_domain,
    j_str(j.name)                    AS name,
    j_str(j.city)                    AS city,
    j_ts(j.signup_ts)                AS signup_ts,
    j_ts(j.updated_at)               AS updated_at,
    j_bool(j.is_test_account)        AS is_test_account,
    j_int(j.year_of_birth)::INTEGER  AS year_of_birth,
    coalesce(
        CASE WHEN j IS NULL THEN 'payload is not a JSON object' END,
        expect_str('user_id', j.user_id, true),
        expect_str('email', j.email, j_missing(j.email_sha256)),
        CASE WHEN NOT contains(j_str(j.email), '@') THEN 'email has no @' END,
        expect_str('email_sha256', j.email_sha256, false),
        CASE WHEN NOT regexp_full_match(j_str(j.email_sha256), '[0-9a-f]{64}') THEN 'email_sha256 is not a hex SHA-256' END,
        expect_str('email_domain', j.email_domain, NOT j_missing(j.email_sha256)),
        CASE WHEN j_str(j.email_domain) = '' THEN 'email_domain is empty' END,
        expect_str('name', j.name, false),
        expect_str('city', j.city, false),
        expect_ts('signup_ts', j.signup_ts, true),
        expect_ts('updated_at', j.updated_at, true),
        expect_bool('is_test_account', j.is_test_account, false),
        expect_int('year_of_birth', j.year_of_birth, false)
    ) AS _reason,
    _topic, _partition, _offset, _kafka_ts, _source_file,
    regexp_replace(payload, '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+', '<email masked>', 'g') AS payload
FROM src

-- silver.users: the latest row per user that day. The email is replaced by
-- the hex SHA-256 of its trimmed, lower-cased form and its domain.
SELECT snapshot_date,
       user_id,
       sha256(lower(trim(email)))            AS email_sha256,
       split_part(lower(trim(email)), '@', 2) AS email_domain,
       name,
       city,
       signup_ts,
       CAST(signup_ts AS DATE)               AS signup_date,
       updated_at,
       is_test_account,
       year_of_birth,
       _source_file
FROM deduped

-- silver.users: the latest row per user that day; of the email only its
-- hash and domain (parse.sql).
SELECT snapshot_date,
       user_id,
       email_sha256,
       email_domain,
       name,
       city,
       signup_ts,
       CAST(signup_ts AS DATE)               AS signup_date,
       updated_at,
       is_test_account,
       year_of_birth,
       _source_file
FROM deduped

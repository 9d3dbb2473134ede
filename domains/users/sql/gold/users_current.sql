-- gold.users_current: one row per user; the merge updates a stored row only
-- when updated_at is newer (version_column).
SELECT user_id, email_sha256, email_domain, name, city, signup_ts, signup_date,
       updated_at, is_test_account, year_of_birth
FROM silver_users

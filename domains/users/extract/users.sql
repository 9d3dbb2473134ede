-- users with the email masked: the hex SHA-256 of its trimmed, lower-cased
-- form (what silver would compute from the raw email) and its domain.
SELECT user_id,
       encode(sha256(convert_to(lower(btrim(email)), 'UTF8')), 'hex') AS email_sha256,
       split_part(lower(btrim(email)), '@', 2)                         AS email_domain,
       name, city, signup_ts, updated_at, is_test_account, year_of_birth
FROM users

-- gold.signups_daily: distinct users per signup date and city, as known from
-- users_current (merged just before this table), recomputed for every signup
-- date this partition touches.
SELECT signup_date, city, count(DISTINCT user_id)::BIGINT AS signups
FROM gold_users_current
WHERE signup_date IN (SELECT DISTINCT signup_date FROM silver_users)
GROUP BY ALL

-- gold.funnel_daily: distinct users reaching each of the six funnel steps
-- that day, and their share of step 1 (0 when step 1 has no users).
WITH steps(step, step_name) AS (
    VALUES (1, 'app_open'), (2, 'search'), (3, 'view_item'), (4, 'add_to_cart'), (5, 'begin_checkout'), (6, 'purchase')
), reached AS (
    SELECT s.step, s.step_name, count(DISTINCT e.user_id) AS users
    FROM steps s LEFT JOIN silver_events e ON e.event_type = s.step_name
    GROUP BY s.step, s.step_name
)
SELECT CAST(getvariable('partition_date') AS DATE) AS event_date,
       step::INTEGER                                AS step,
       step_name,
       users::BIGINT                                AS users,
       CASE WHEN first_value(users) OVER (ORDER BY step) = 0 THEN 0
            ELSE round(users / first_value(users) OVER (ORDER BY step), 4)
       END::DECIMAL(6, 4)                           AS conversion_from_first
FROM reached

-- gold.revenue_daily: purchases and revenue per city.
SELECT event_date,
       city,
       count(*)::BIGINT                                   AS purchases,
       sum(amount)::DECIMAL(14, 2)                        AS revenue,
       round(sum(amount) / count(*), 2)::DECIMAL(14, 2)   AS avg_order_value
FROM silver_events
WHERE event_type = 'purchase'
GROUP BY ALL

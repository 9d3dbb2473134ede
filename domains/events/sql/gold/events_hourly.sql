-- gold.events_hourly: events and distinct users per hour and event type.
SELECT event_date,
       date_trunc('hour', event_timestamp) AS event_hour,
       event_type,
       count(*)::BIGINT                     AS events,
       count(DISTINCT user_id)::BIGINT      AS unique_users
FROM silver_events
GROUP BY ALL

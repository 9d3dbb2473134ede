-- silver.events: one row per event_id (the framework keeps, of duplicates,
-- the greatest (_kafka_ts, _offset)).
SELECT event_date, event_id, event_type, event_timestamp, user_id, session_id, device, city,
       restaurant_id, item_id, order_id, amount, properties, _source_file
FROM deduped

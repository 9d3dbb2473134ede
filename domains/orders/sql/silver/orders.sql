-- silver.orders: the latest version of each order (by updated_at; ties go to
-- the greatest (_kafka_ts, _offset)).
SELECT order_date, order_id, user_id, restaurant_id, status, city, created_at, updated_at,
       currency, total_amount, len(items)::INTEGER AS item_lines, _source_file
FROM deduped

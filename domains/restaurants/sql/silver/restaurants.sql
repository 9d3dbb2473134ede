-- silver.restaurants: the last snapshot of each restaurant that day.
SELECT snapshot_date, restaurant_id, name, city, cuisine, rating, is_active, snapshot_ts,
       len(menu_items)::INTEGER AS menu_item_count, _source_file
FROM deduped

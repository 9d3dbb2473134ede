-- gold.restaurants_current: one row per restaurant from its newest snapshot,
-- with its menu size. The merge replaces a stored row only when snapshot_ts
-- is newer (version_column), so reprocessing an old day changes nothing.
SELECT r.restaurant_id,
       r.name,
       r.city,
       r.cuisine,
       r.rating,
       r.is_active,
       r.menu_item_count,
       (SELECT count(*) FROM silver_menu_items m
         WHERE m.restaurant_id = r.restaurant_id AND m.is_available)::BIGINT AS available_menu_items,
       r.snapshot_ts,
       r.snapshot_date
FROM silver_restaurants r

-- restaurants: a full snapshot of every restaurant each hour. Required:
-- restaurant_id, name, snapshot_ts. menu_items is a list of
-- {item_id, name, price, is_available}.
WITH src AS (
    SELECT *,
        CASE WHEN is_object(payload) THEN json_transform(payload, '{
            "restaurant_id": "JSON", "name": "JSON", "city": "JSON", "cuisine": "JSON", "rating": "JSON",
            "is_active": "JSON", "snapshot_ts": "JSON", "menu_items": "JSON"}') END AS j
    FROM bronze
), typed AS (
    SELECT *,
        CASE WHEN json_type(j.menu_items) = 'ARRAY' THEN json_transform(j.menu_items,
            '[{"item_id": "VARCHAR", "name": "VARCHAR", "price": "DECIMAL(12,2)", "is_available": "BOOLEAN"}]') END AS menu
    FROM src
)
SELECT
    CAST(j_ts(j.snapshot_ts) AS DATE) AS snapshot_date,
    j_str(j.restaurant_id)            AS restaurant_id,
    j_str(j.name)                     AS name,
    j_str(j.city)                     AS city,
    j_str(j.cuisine)                  AS cuisine,
    j_double(j.rating)                AS rating,
    j_bool(j.is_active)               AS is_active,
    j_ts(j.snapshot_ts)               AS snapshot_ts,
    coalesce(menu, [])                AS menu_items,
    coalesce(
        CASE WHEN j IS NULL THEN 'payload is not a JSON object' END,
        expect_str('restaurant_id', j.restaurant_id, true),
        expect_str('name', j.name, true),
        expect_str('city', j.city, false),
        expect_str('cuisine', j.cuisine, false),
        expect_num('rating', j.rating, false),
        expect_bool('is_active', j.is_active, false),
        expect_ts('snapshot_ts', j.snapshot_ts, true),
        expect_list('menu_items', j.menu_items, false),
        CASE WHEN len(list_filter(menu, m -> m.item_id IS NULL OR m.price IS NULL)) > 0
             THEN 'menu_items: an item lacks item_id or price' END
    ) AS _reason,
    _topic, _partition, _offset, _kafka_ts, _source_file, payload
FROM typed

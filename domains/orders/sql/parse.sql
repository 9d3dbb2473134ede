-- orders: change data capture, one message per status change. Every field is
-- required except city and currency; items is a list of
-- {item_id, name, quantity, unit_price}.
WITH src AS (
    SELECT *,
        CASE WHEN is_object(payload) THEN json_transform(payload, '{
            "order_id": "JSON", "user_id": "JSON", "restaurant_id": "JSON", "status": "JSON", "city": "JSON",
            "created_at": "JSON", "updated_at": "JSON", "currency": "JSON", "items": "JSON", "total_amount": "JSON"}') END AS j
    FROM bronze
), typed AS (
    SELECT *,
        CASE WHEN json_type(j.items) = 'ARRAY' THEN json_transform(j.items,
            '[{"item_id": "VARCHAR", "name": "VARCHAR", "quantity": "BIGINT", "unit_price": "DECIMAL(12,2)"}]') END AS item_list
    FROM src
)
SELECT
    CAST(j_ts(j.created_at) AS DATE) AS order_date,
    j_str(j.order_id)                AS order_id,
    j_str(j.user_id)                 AS user_id,
    j_str(j.restaurant_id)           AS restaurant_id,
    j_str(j.status)                  AS status,
    j_str(j.city)                    AS city,
    j_ts(j.created_at)               AS created_at,
    j_ts(j.updated_at)               AS updated_at,
    j_str(j.currency)                AS currency,
    item_list                        AS items,
    j_money(j.total_amount)          AS total_amount,
    coalesce(
        CASE WHEN j IS NULL THEN 'payload is not a JSON object' END,
        expect_str('order_id', j.order_id, true),
        expect_str('user_id', j.user_id, true),
        expect_str('restaurant_id', j.restaurant_id, true),
        expect_enum('status', j.status, ['placed', 'accepted', 'preparing', 'out_for_delivery', 'delivered', 'cancelled'], true),
        expect_str('city', j.city, false),
        expect_ts('created_at', j.created_at, true),
        expect_ts('updated_at', j.updated_at, true),
        expect_str('currency', j.currency, false),
        expect_list('items', j.items, true),
        CASE WHEN len(list_filter(item_list, i -> i.item_id IS NULL OR i.quantity IS NULL OR i.unit_price IS NULL)) > 0
             THEN 'items: an item lacks item_id, quantity or unit_price' END,
        expect_num('total_amount', j.total_amount, true)
    ) AS _reason,
    _topic, _partition, _offset, _kafka_ts, _source_file, payload
FROM typed

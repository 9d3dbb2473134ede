-- events: clickstream, one message per event. Types and validates every field.
-- Required: event_id, event_type (one of 11), event_timestamp, user_id.
-- amount is a number, required on purchase. Everything else is optional.
WITH src AS (
    SELECT *,
        CASE WHEN is_object(payload) THEN json_transform(payload, '{
            "event_id": "JSON", "event_type": "JSON", "event_timestamp": "JSON", "user_id": "JSON",
            "session_id": "JSON", "device": "JSON", "city": "JSON", "restaurant_id": "JSON",
            "item_id": "JSON", "order_id": "JSON", "amount": "JSON", "properties": "JSON"}') END AS j
    FROM bronze
)
SELECT
    CAST(j_ts(j.event_timestamp) AS DATE) AS event_date,
    j_str(j.event_id)                     AS event_id,
    j_str(j.event_type)                   AS event_type,
    j_ts(j.event_timestamp)               AS event_timestamp,
    j_str(j.user_id)                      AS user_id,
    j_str(j.session_id)                   AS session_id,
    j_str(j.device)                       AS device,
    j_str(j.city)                         AS city,
    j_str(j.restaurant_id)                AS restaurant_id,
    j_str(j.item_id)                      AS item_id,
    j_str(j.order_id)                     AS order_id,
    j_money(j.amount)                     AS amount,
    j_json(j.properties)                  AS properties,
    coalesce(
        CASE WHEN j IS NULL THEN 'payload is not a JSON object' END,
        expect_str('event_id', j.event_id, true),
        expect_enum('event_type', j.event_type, ['app_open', 'search', 'view_restaurant', 'view_item', 'add_to_cart',
            'remove_from_cart', 'begin_checkout', 'purchase', 'rate_order', 'share', 'app_close'], true),
        expect_ts('event_timestamp', j.event_timestamp, true),
        expect_str('user_id', j.user_id, true),
        expect_str('session_id', j.session_id, false),
        expect_str('device', j.device, false),
        expect_str('city', j.city, false),
        expect_str('restaurant_id', j.restaurant_id, false),
        expect_str('item_id', j.item_id, false),
        expect_str('order_id', j.order_id, false),
        expect_num('amount', j.amount, j_str(j.event_type) = 'purchase')
    ) AS _reason,
    _topic, _partition, _offset, _kafka_ts, _source_file, payload
FROM src

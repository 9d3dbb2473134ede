-- The items of the changed orders ($1: their order_id values), nested as
-- the orders contract's items[].
SELECT order_id,
       json_agg(json_build_object('item_id', item_id, 'name', name, 'quantity', quantity, 'unit_price', unit_price)
                ORDER BY line_number) AS items
FROM order_items
WHERE order_id = ANY($1)
GROUP BY order_id

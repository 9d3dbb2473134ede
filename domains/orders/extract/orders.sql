-- orders with their order_items nested as items[] (docs/domains.md).
SELECT o.order_id, o.user_id, o.restaurant_id, o.status, o.city, o.created_at, o.updated_at,
       o.currency, o.total_amount,
       coalesce((SELECT json_agg(json_build_object('item_id', i.item_id, 'name', i.name, 'quantity', i.quantity,
                                                   'unit_price', i.unit_price) ORDER BY i.line_number)
                 FROM order_items i WHERE i.order_id = o.order_id), '[]') AS items
FROM orders o

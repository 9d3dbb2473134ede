-- restaurants with their menu_items nested (docs/domains.md).
SELECT r.restaurant_id, r.name, r.city, r.cuisine, r.rating, r.is_active,
       coalesce((SELECT json_agg(json_build_object('item_id', m.item_id, 'name', m.name, 'price', m.price,
                                                   'is_available', m.is_available) ORDER BY m.position)
                 FROM menu_items m WHERE m.restaurant_id = r.restaurant_id), '[]') AS menu_items
FROM restaurants r

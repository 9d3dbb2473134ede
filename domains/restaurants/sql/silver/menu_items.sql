-- silver.menu_items: that snapshot's menu, one row per item.
SELECT d.snapshot_date,
       d.restaurant_id,
       d.menu_items[n.i].item_id       AS item_id,
       d.menu_items[n.i].name          AS name,
       d.menu_items[n.i].price         AS price,
       d.menu_items[n.i].is_available  AS is_available,
       d.snapshot_ts,
       d._source_file
FROM deduped d, LATERAL (SELECT unnest(range(1, len(d.menu_items) + 1)) AS i) n

-- silver.order_items: the latest version's items, one row per item.
SELECT d.order_date,
       d.order_id,
       n.line_number::INTEGER              AS line_number,
       d.items[n.line_number].item_id      AS item_id,
       d.items[n.line_number].name         AS name,
       d.items[n.line_number].quantity     AS quantity,
       d.items[n.line_number].unit_price   AS unit_price,
       d._source_file
FROM deduped d, LATERAL (SELECT unnest(range(1, len(d.items) + 1)) AS line_number) n

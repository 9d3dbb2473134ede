-- gold.orders_daily: orders, items and gross amount per city and latest status.
SELECT o.order_date,
       o.city,
       o.status,
       count(*)::BIGINT                          AS orders,
       coalesce(sum(i.quantity), 0)::BIGINT       AS items,
       sum(o.total_amount)::DECIMAL(14, 2)       AS gross_amount
FROM silver_orders o
LEFT JOIN (SELECT order_id, sum(quantity) AS quantity FROM silver_order_items GROUP BY order_id) i USING (order_id)
GROUP BY ALL

SELECT payment_date, method, count(*)::BIGINT AS payments, sum(amount)::DECIMAL(14, 2) AS amount
FROM silver_payments
GROUP BY ALL

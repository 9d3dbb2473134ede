WITH src AS (
    SELECT *, CASE WHEN is_object(payload) THEN json_transform(payload, '{"payment_id": "JSON", "paid_at": "JSON", "method": "JSON", "amount": "JSON"}') END AS j
    FROM bronze
)
SELECT CAST(j_ts(j.paid_at) AS DATE) AS payment_date,
       j_str(j.payment_id) AS payment_id,
       j_ts(j.paid_at) AS paid_at,
       j_str(j.method) AS method,
       j_money(j.amount) AS amount,
       coalesce(expect_str('payment_id', j.payment_id, true), expect_ts('paid_at', j.paid_at, true),
                expect_enum('method', j.method, ['card', 'cash'], true), expect_num('amount', j.amount, true)) AS _reason,
       _topic, _partition, _offset, _kafka_ts, _source_file, payload
FROM src

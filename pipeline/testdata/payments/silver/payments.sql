SELECT payment_date, payment_id, paid_at, method, amount, _source_file FROM deduped

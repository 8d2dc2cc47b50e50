-- The transaction's now(): updated_at, and created_at when Storage gave none, of rows the COPY
-- fast path inserts without a probe (sink.py, expect_new).
SELECT now();

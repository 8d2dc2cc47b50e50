-- Held until the end of the schema-init transaction, so concurrent inits run one at a time.
SELECT pg_advisory_xact_lock(hashtext('loader.init_schema'));

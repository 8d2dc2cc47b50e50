-- image_assets as the search path resolves it, schema-qualified and quoted for SQL text.
SELECT format('%I.%I', n.nspname, c.relname) AS target
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass('image_assets');

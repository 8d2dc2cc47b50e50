-- The columns of relation $1 (a name), in order, as "name type": a backup restores only
-- into a table of the same shape.
SELECT array_agg(format('%s %s', attname, format_type(atttypid, atttypmod)) ORDER BY attnum)
FROM pg_attribute
WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped;

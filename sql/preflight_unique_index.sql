-- Whether image_assets has a valid, non-partial unique index on exactly (file_path):
-- what ON CONFLICT (file_path) needs.
SELECT EXISTS (
    SELECT 1
    FROM pg_index AS i
    JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = to_regclass('image_assets')
      AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1
      AND i.indpred IS NULL AND i.indexprs IS NULL
      AND a.attname = 'file_path'
);

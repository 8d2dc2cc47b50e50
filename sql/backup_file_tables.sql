-- Session tables a backup file is loaded into before it is checked and restored.
DROP TABLE IF EXISTS pg_temp.restore_image_assets;
CREATE TEMP TABLE restore_image_assets ON COMMIT DROP AS TABLE image_assets WITH NO DATA;

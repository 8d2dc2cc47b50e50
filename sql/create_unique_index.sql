-- --create-unique-index, only after preflight found no duplicate file_path. CONCURRENTLY, so
-- the user's application keeps writing while it builds.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS image_assets_file_path_key
    ON image_assets (file_path);

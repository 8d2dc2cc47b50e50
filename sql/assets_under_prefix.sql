-- Whether image_assets holds any row under the path prefix $1 ($2: the first string after
-- every path with that prefix, the prefix with its last character raised by one). A run that
-- finds some is likely a re-run, and starts checking whole folders (folders_unchanged.sql).
SELECT EXISTS (
    SELECT 1 FROM image_assets
    WHERE file_path >= $1 AND file_path < $2 AND starts_with(file_path, $1)
);

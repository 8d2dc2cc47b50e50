-- The cdn_urls of a sample of Storage files, for `verify --check-urls`.
--   $1 text[] file paths
SELECT file_path, cdn_url
FROM image_assets
WHERE file_path = ANY($1::text[]) AND cdn_url IS NOT NULL
ORDER BY file_path;

-- The folders holding files a repair can fix (no row, missing tag, no cdn_url), with the
-- customer their files must carry.
SELECT DISTINCT f.folder, f.customer_id
FROM verify_found AS v
JOIN verify_objects AS o USING (file_path)
JOIN verify_folders AS f USING (folder)
WHERE v.finding IN ('missing', 'untagged', 'no_cdn_url')
ORDER BY f.folder;

-- The folders holding files a repair can fix ($1: the findings it fixes, verify.REPAIRABLE),
-- with the customer their files must carry.
SELECT DISTINCT f.folder, f.customer_id
FROM verify_found AS v
JOIN verify_objects AS o USING (file_path)
JOIN verify_folders AS f USING (folder)
WHERE v.finding = ANY ($1::text[])
ORDER BY f.folder;

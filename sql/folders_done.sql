-- Folders whose every row is committed: $2 folder names, $3 their counts (jsonb).
UPDATE loader.folders AS f
SET state = 'done', counts = d.counts, error = NULL
FROM unnest($2::text[], $3::jsonb[]) AS d(folder, counts)
WHERE f.run_id = $1 AND f.folder = d.folder;

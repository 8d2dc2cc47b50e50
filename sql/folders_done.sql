-- Folders whose every row is committed: $2 folder names, $3 their counts (jsonb), by worker
-- $4. Only folders it still holds: one taken over meanwhile is the new holder's to finish.
UPDATE loader.folders AS f
SET state = 'done', counts = d.counts, error = NULL
FROM unnest($2::text[], $3::jsonb[]) AS d(folder, counts)
WHERE f.run_id = $1 AND f.folder = d.folder AND f.state = 'claimed' AND f.claimed_by = $4;

-- First statement of each batch's transaction: which of the batch's folders ($2) worker $3
-- still holds in run $1. The chunks holding them stay locked until the batch commits, so no
-- takeover (chunks_claim.sql skips locked rows) can happen while it commits; a batch that
-- starts after a takeover writes none of the lost folders' rows. So a folder's rows are only
-- ever committed by the worker that holds it, whatever each worker believes about its
-- liveness lock. None, once the run is rolled back: its row is locked too (KEY SHARE), so a
-- rollback (rollback_check.sql, FOR UPDATE) waits for the batch, and batches after it write
-- nothing. The worker's own claimed chunks are few (the partial index chunks_claimed).
SELECT f.folder
FROM loader.chunks AS c
CROSS JOIN LATERAL unnest(c.folders) AS f(folder)
WHERE c.run_id = $1 AND c.state = 'claimed' AND c.claimed_by = $3
  AND f.folder = ANY ($2::text[])
  AND EXISTS (SELECT 1 FROM loader.runs AS r
              WHERE r.run_id = $1 AND r.status <> 'rolled_back' FOR KEY SHARE)
ORDER BY c.chunk_id, f.folder
FOR SHARE OF c;

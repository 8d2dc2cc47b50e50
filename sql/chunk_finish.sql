-- Record chunk $1 of worker $2, every folder of it listed and written: the folders done ($3,
-- their customers $4, their counts $5 as folder -> counts) and the folders that failed ($6,
-- $7, their counts $8 and reasons $9, likewise). One write when nothing failed; failed folders
-- are split off into a chunk of their own, state 'failed', for a later worker to retry.
-- Only a chunk the worker still holds: one taken over meanwhile is the new holder's to finish.
WITH held AS (
    UPDATE loader.chunks AS c
    SET state = CASE WHEN cardinality($3::text[]) > 0 THEN 'done' ELSE 'failed' END,
        folders = CASE WHEN cardinality($3::text[]) > 0 THEN $3::text[] ELSE $6::text[] END,
        customer_ids = CASE WHEN cardinality($3::text[]) > 0 THEN $4::bigint[]
                            ELSE $7::bigint[] END,
        counts = CASE WHEN cardinality($3::text[]) > 0 THEN $5::jsonb ELSE $8::jsonb END,
        errors = CASE WHEN cardinality($3::text[]) > 0 THEN NULL ELSE $9::jsonb END
    WHERE c.chunk_id = $1 AND c.state = 'claimed' AND c.claimed_by = $2
    RETURNING c.run_id, c.claimed_at, c.attempts
)
INSERT INTO loader.chunks (run_id, folders, customer_ids, state, claimed_by, claimed_at,
                           attempts, counts, errors)
SELECT held.run_id, $6::text[], $7::bigint[], 'failed', $2, held.claimed_at, held.attempts,
       $8::jsonb, $9::jsonb
FROM held
WHERE cardinality($3::text[]) > 0 AND cardinality($6::text[]) > 0;

-- Delete the orphans this verify found (verify_found), keeping each deleted row whole under
-- run $1 so the deletion can be undone exactly (orphans_restore.sql). Returns the count.
WITH gone AS (
    DELETE FROM image_assets AS ia
    USING (SELECT DISTINCT file_path FROM verify_found WHERE finding = 'orphan') AS o
    WHERE ia.file_path = o.file_path
    RETURNING ia.*
),
kept AS (
    INSERT INTO loader.deleted_rows (run_id, file_path, row)
    SELECT $1, g.file_path, to_jsonb(g) FROM gone AS g
    RETURNING 1
)
SELECT count(*) FROM kept;

-- Undo an orphan deletion run ($1): insert each deleted row back exactly as it was (every
-- column, NULLs and empty arrays kept), unless its file_path was registered again since.
-- Returns how many rows came back; a second call finds nothing left to restore.
WITH pending AS (
    UPDATE loader.deleted_rows SET restored_at = now()
    WHERE run_id = $1 AND restored_at IS NULL
    RETURNING row
),
restored AS (
    INSERT INTO image_assets OVERRIDING SYSTEM VALUE
    SELECT (jsonb_populate_record(NULL::image_assets, p.row)).*
    FROM pending AS p
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM restored;

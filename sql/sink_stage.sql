-- The connection's staging table: a batch goes in by binary COPY (columns: rows.STAGED_COLUMNS)
-- and upsert_batch.sql reads it; emptied at every commit. created_at stays text here so a
-- malformed timestamp is a data error of the upsert (isolated by batch splitting).
CREATE TEMP TABLE IF NOT EXISTS loader_stage (
    file_path text, folder text, filename text, format text, mime_type text, file_size bigint,
    created_at text, tags text[], cdn_url text
) ON COMMIT DELETE ROWS;

-- COPY fast path, first step: which of the batch's paths ($1 text[]) exist already, and the
-- transaction's now() (the updated_at, and created_at when Storage gave none, of new rows).
SELECT now() AS now,
       ARRAY(SELECT file_path FROM image_assets WHERE file_path = ANY ($1::text[])) AS existing;

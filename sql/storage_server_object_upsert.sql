-- An object as Supabase Storage since v0.35 writes it (its permission check, rolled back,
-- and the upload itself): $1 id, $2 bucket, $3 name, $4 version, $5 created_at,
-- $6 metadata, $7 updated_at. An existing object (x-upsert) keeps its id and created_at.
INSERT INTO storage.objects AS o (id, bucket_id, name, version, created_at, metadata, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (bucket_id, name) DO UPDATE
   SET metadata = excluded.metadata, version = excluded.version, updated_at = excluded.updated_at;

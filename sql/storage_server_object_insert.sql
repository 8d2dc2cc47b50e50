-- An object as Supabase Storage before v0.35 first wrote it, before storing the file, with
-- no metadata yet: $1 id, $2 bucket, $3 name, $4 version, $5 created_at. An existing object
-- (x-upsert) is left as it is until its metadata is written.
INSERT INTO storage.objects (id, bucket_id, name, version, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $5)
    ON CONFLICT (bucket_id, name) DO NOTHING;

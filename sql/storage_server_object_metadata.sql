-- The metadata of object $2 of bucket $1, once its file is stored ($3 metadata,
-- $4 updated_at): the second write of Supabase Storage before v0.35.
UPDATE storage.objects
   SET metadata = $3, updated_at = $4
 WHERE bucket_id = $1 AND name = $2;

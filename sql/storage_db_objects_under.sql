-- Every object below a folder prefix, in byte order (read through a server-side cursor).
SELECT name, metadata, created_at, updated_at
FROM storage.objects
WHERE bucket_id = $1
  AND name COLLATE "C" >= $2 AND name COLLATE "C" < $3
ORDER BY name COLLATE "C";

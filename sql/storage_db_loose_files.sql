-- Objects directly under a prefix in storage.objects (not in any folder).
SELECT name, metadata, created_at, updated_at
FROM storage.objects
WHERE bucket_id = $1
  AND name COLLATE "C" >= $2 AND name COLLATE "C" < $3
  AND strpos(substr(name, length($2) + 1), '/') = 0
ORDER BY name COLLATE "C";

-- Top-level folders under a prefix in storage.objects: the first path segment after the
-- prefix of every name that has a further '/'. $1 bucket, [$2, $3) the prefix's byte range.
SELECT DISTINCT split_part(substr(name, length($2) + 1), '/', 1) AS folder
FROM storage.objects
WHERE bucket_id = $1
  AND name COLLATE "C" >= $2 AND name COLLATE "C" < $3
  AND strpos(substr(name, length($2) + 1), '/') > 0
ORDER BY 1;

-- $1 bucket: forget the bucket's demo objects before they are copied in again.
DELETE FROM storage.objects
 WHERE bucket_id = $1

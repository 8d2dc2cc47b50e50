SELECT public FROM storage.buckets WHERE id = $1;

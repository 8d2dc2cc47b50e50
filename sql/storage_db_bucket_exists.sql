SELECT EXISTS (SELECT 1 FROM storage.buckets WHERE id = $1);

-- Whether run $1 still has folders that some worker must walk.
SELECT EXISTS (SELECT 1 FROM loader.folders
               WHERE run_id = $1 AND state IN ('pending', 'claimed'));

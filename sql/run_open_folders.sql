-- Whether run $1 still has folders that some worker must walk (or may: its folders are still
-- being registered).
SELECT EXISTS (SELECT 1 FROM loader.chunks
               WHERE run_id = $1 AND state IN ('pending', 'claimed'))
    OR (SELECT registering FROM loader.runs WHERE run_id = $1);

-- Before undoing run $1: its status, how many of its inserted rows were changed since (kept
-- unless --force), how many of its rows a later, not rolled back run also changed, and whether
-- a live worker is on it (its shared liveness lock, worker_lock.sql, is held; taking it here
-- for the transaction also keeps new workers from joining while the rollback runs).
SELECT
    (SELECT status FROM loader.runs WHERE run_id = $1 FOR UPDATE) AS status,
    NOT pg_try_advisory_xact_lock(hashtextextended('loader-run:' || $1::bigint::text, 0))
        AS live,
    (SELECT count(*)
       FROM loader.journal AS j
       JOIN image_assets AS ia ON ia.id = j.asset_id
      WHERE j.run_id = $1 AND j.action = 'insert'
        AND (ia.ai_tags IS DISTINCT FROM j.new_ai_tags
             OR ia.cdn_url IS DISTINCT FROM j.new_cdn_url)) AS changed_since,
    (SELECT count(*)
       FROM loader.journal AS j
       JOIN loader.journal AS later
         ON md5(later.file_path) = md5(j.file_path) AND later.file_path = j.file_path
        AND later.run_id > j.run_id
       JOIN loader.runs AS r ON r.run_id = later.run_id AND r.status <> 'rolled_back'
      WHERE j.run_id = $1) AS touched_later;

-- Before undoing run $1: its status (row locked); whether a live worker is on it (its shared
-- liveness lock, worker_lock.sql, is held; taking it here for the transaction also keeps new
-- workers from joining while the rollback runs); and how many of its rows a later, not rolled
-- back run changed again (undoing this run first would break that one).
SELECT
    (SELECT status FROM loader.runs WHERE run_id = $1 FOR UPDATE) AS status,
    NOT pg_try_advisory_xact_lock(hashtextextended('loader-run:' || $1::bigint::text, 0))
        AS live,
    (SELECT count(*)
       FROM loader.journal_updates AS later
       JOIN loader.runs AS r ON r.run_id = later.run_id AND r.status <> 'rolled_back'
      WHERE later.run_id > $1
        AND later.file_path IN (SELECT file_path FROM loader.journal WHERE run_id = $1))
        AS touched_later;

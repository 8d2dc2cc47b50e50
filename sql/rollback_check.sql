-- Before undoing run $1: its status (row locked), and how many of its rows a later, not
-- rolled back run changed again (undoing this run first would break that one).
SELECT
    (SELECT status FROM loader.runs WHERE run_id = $1 FOR UPDATE) AS status,
    (SELECT count(*)
       FROM loader.journal_updates AS later
       JOIN loader.runs AS r ON r.run_id = later.run_id AND r.status <> 'rolled_back'
      WHERE later.run_id > $1
        AND later.file_path IN (SELECT file_path FROM loader.journal WHERE run_id = $1))
        AS touched_later;

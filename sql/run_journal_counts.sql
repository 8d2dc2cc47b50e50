-- Rows run $1 inserted and updated, per folder, from the journal's tables themselves: counting
-- needs no file path, which the loader.journal view would build for every inserted row.
SELECT folder, sum(inserted)::bigint AS inserted, sum(updated)::bigint AS updated
FROM (
    SELECT folder, cardinality(names) AS inserted, 0 AS updated
    FROM loader.journal_inserts WHERE run_id = $1
    UNION ALL
    SELECT folder, 0, 1 FROM loader.journal_updates WHERE run_id = $1
) AS j
GROUP BY folder;

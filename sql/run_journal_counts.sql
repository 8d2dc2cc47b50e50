-- Rows run $1 inserted and updated, per folder, from the journal's tables themselves: counting
-- needs no file path, which the loader.journal view would build for every inserted row. Of
-- the folders $2 only, or of every folder when $2 is NULL.
SELECT folder, sum(inserted)::bigint AS inserted, sum(updated)::bigint AS updated
FROM (
    SELECT folder, cardinality(names) AS inserted, 0 AS updated
    FROM loader.journal_inserts
    WHERE run_id = $1 AND ($2::text[] IS NULL OR folder = ANY ($2::text[]))
    UNION ALL
    SELECT folder, 0, 1 FROM loader.journal_updates
    WHERE run_id = $1 AND ($2::text[] IS NULL OR folder = ANY ($2::text[]))
) AS j
GROUP BY folder;

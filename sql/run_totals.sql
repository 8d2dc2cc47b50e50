-- Whole-run counts (see loader.run_counts): those stored when the run was closed (they are
-- final: nothing writes to a closed run), else counted now. Counting again at the end of a
-- run that updated 900,000 rows repeated a distinct count over its journal.
SELECT CASE WHEN r.status IN ('succeeded', 'incomplete') THEN r.counts
            ELSE loader.run_counts(r.run_id) END
FROM loader.runs AS r
WHERE r.run_id = $1;

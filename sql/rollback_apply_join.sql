-- Before the plan is applied (rollback_apply_*.sql), for the rest of the rollback's
-- transaction: join each chunk of the plan to image_assets by nested loop over its index on
-- id (its primary key). The plan comes in the table's physical order, so that loop walks the
-- table's pages in order; a hash join reads the whole table once per chunk (a million rows
-- in 45 chunks: ~15 s more), and the planner prefers it from ~15,000 rows a chunk on. A
-- table with no such index keeps the planner's choice: a nested loop would scan it per row.
SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)
WHERE EXISTS (
    SELECT 1
    FROM pg_index AS i
    JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = 'image_assets'::regclass AND a.attname = 'id'
      AND i.indisvalid AND i.indpred IS NULL
);

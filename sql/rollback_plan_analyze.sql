-- Statistics for the plan just filled: without them the planner guesses the size of a
-- temporary table, and may join a million rows by nested loop.
ANALYZE pg_temp.loader_rollback_plan;

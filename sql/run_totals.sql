-- Whole-run counts (see loader.run_counts).
SELECT loader.run_counts($1);

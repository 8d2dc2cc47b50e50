-- Rollback plan in numbers: per action its rows, the range of seq they take (one range per
-- action applied, rollback_plan.sql), and up to $1 example paths (the first in path order:
-- a top-N scan of that range, where aggregating every path in order sorted them all).
SELECT a.action, a.n, a.first_seq, a.last_seq,
       ARRAY(SELECT p.file_path
             FROM pg_temp.loader_rollback_plan AS p
             WHERE p.seq BETWEEN a.first_seq AND a.last_seq AND p.action = a.action
             ORDER BY p.file_path
             LIMIT $1) AS examples
FROM (SELECT action, count(*) AS n, min(seq) AS first_seq, max(seq) AS last_seq
      FROM pg_temp.loader_rollback_plan
      GROUP BY action) AS a
ORDER BY a.action;

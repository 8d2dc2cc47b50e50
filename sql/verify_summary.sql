-- Count and the first $1 example paths (in path order) of each finding of this verify.
SELECT finding, count(*) AS total,
       array_agg(file_path ORDER BY file_path) FILTER (WHERE rank <= $1) AS examples
FROM (
    SELECT finding, file_path,
           row_number() OVER (PARTITION BY finding ORDER BY file_path) AS rank
    FROM (SELECT DISTINCT finding, file_path FROM verify_found) AS d
) AS ranked
GROUP BY finding;

-- How many file_paths occur more than once, and how many rows they hold.
SELECT count(*) AS paths, coalesce(sum(n), 0) AS rows
FROM (SELECT count(*) AS n FROM image_assets GROUP BY file_path HAVING count(*) > 1) AS d;

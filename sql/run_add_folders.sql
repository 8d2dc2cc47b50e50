-- Add folders $2 (with their customers $3, NULL: registered without a tag) to run $1, in
-- chunks of $4 in the order given; folders the run already has are left as they are (a resume
-- completing a registration a crash cut short).
INSERT INTO loader.chunks (run_id, folders, customer_ids)
SELECT $1, array_agg(n.folder ORDER BY n.i), array_agg(n.customer_id ORDER BY n.i)
FROM (
    SELECT f.folder, f.customer_id, f.i, (row_number() OVER (ORDER BY f.i) - 1) / $4 AS part
    FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS f(folder, customer_id, i)
    WHERE NOT EXISTS (SELECT 1 FROM loader.folders AS k
                      WHERE k.run_id = $1 AND k.folder = f.folder)
) AS n
GROUP BY n.part
ORDER BY n.part;

-- The run's folders with the customer each one is tied to (NULL: registered without a tag).
INSERT INTO loader.folders (run_id, folder, customer_id)
SELECT $1, f.folder, f.customer_id
FROM unnest($2::text[], $3::bigint[]) AS f(folder, customer_id)
ON CONFLICT (run_id, folder) DO NOTHING;

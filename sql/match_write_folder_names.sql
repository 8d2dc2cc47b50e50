-- $1 bigint[] customer ids, $2 text[] their new folder_name. Sets the ones that differ and
-- records before/after in loader.customer_changes, in this one statement. The self-join
-- `old` reads the row as it was before this UPDATE, which RETURNING alone cannot give.
WITH target AS (
    SELECT customer_id, folder_name
      FROM unnest($1::bigint[], $2::text[]) AS t (customer_id, folder_name)
), changed AS (
    UPDATE public.customers AS c
       SET folder_name = target.folder_name
      FROM target
      JOIN public.customers AS old ON old.id = target.customer_id
     WHERE c.id = target.customer_id
       AND c.folder_name IS DISTINCT FROM target.folder_name
 RETURNING c.id, old.folder_name AS prev_folder_name, c.folder_name AS new_folder_name
)
INSERT INTO loader.customer_changes (customer_id, prev_folder_name, new_folder_name)
SELECT id, prev_folder_name, new_folder_name
  FROM changed
RETURNING customer_id

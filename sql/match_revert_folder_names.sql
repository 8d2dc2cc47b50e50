-- Restore each customer's folder_name from before its first un-reverted change, but only
-- where it still holds what our last change wrote (nobody edited it since); mark those
-- changes reverted. Returns how many customers were restored and how many had changes.
WITH pending AS (
    SELECT customer_id,
           (array_agg(prev_folder_name ORDER BY change_id))[1]     AS prev_folder_name,
           (array_agg(new_folder_name ORDER BY change_id DESC))[1] AS new_folder_name,
           array_agg(change_id)                                    AS change_ids
      FROM loader.customer_changes
     WHERE reverted_at IS NULL
     GROUP BY customer_id
), restored AS (
    UPDATE public.customers AS c
       SET folder_name = pending.prev_folder_name
      FROM pending
     WHERE c.id = pending.customer_id
       AND c.folder_name IS NOT DISTINCT FROM pending.new_folder_name
 RETURNING c.id
), marked AS (
    UPDATE loader.customer_changes AS ch
       SET reverted_at = now()
      FROM pending
      JOIN restored ON restored.id = pending.customer_id
     WHERE ch.change_id = ANY (pending.change_ids)
 RETURNING ch.change_id
)
SELECT (SELECT count(*) FROM restored)::int AS restored,
       (SELECT count(*) FROM pending)::int  AS pending,
       (SELECT count(*) FROM marked)::int   AS marked

-- The matcher's latest links into sync's: $1 folders, $2 their customer ids (NULL: not
-- linked). Folders no longer linked are dropped; unchanged links are not written again.
WITH input AS (
    SELECT folder, customer_id
    FROM unnest($1::text[], $2::bigint[]) AS t (folder, customer_id)
    WHERE customer_id IS NOT NULL
),
gone AS (
    DELETE FROM loader.sync_links AS l
    WHERE NOT EXISTS (SELECT 1 FROM input WHERE input.folder = l.folder)
)
INSERT INTO loader.sync_links AS l (folder, customer_id)
SELECT folder, customer_id FROM input
    ON CONFLICT (folder) DO UPDATE SET customer_id = excluded.customer_id, linked_at = now()
 WHERE l.customer_id <> excluded.customer_id;

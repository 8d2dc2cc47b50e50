-- $1 text[] folders, $2 bigint[] customer ids (NULL = no customer), $3 who decided.
INSERT INTO loader.match_decisions AS d (folder, customer_id, decided_by)
SELECT folder, customer_id, $3::text
  FROM unnest($1::text[], $2::bigint[]) AS t (folder, customer_id)
    ON CONFLICT (folder) DO UPDATE
   SET customer_id = EXCLUDED.customer_id,
       decided_by  = EXCLUDED.decided_by,
       decided_at  = now()

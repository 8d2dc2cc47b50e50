-- $1 bigint[]: customer ids named in decisions; returns those that exist.
SELECT id
  FROM public.customers
 WHERE id = ANY ($1::bigint[])

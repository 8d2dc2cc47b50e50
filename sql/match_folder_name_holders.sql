-- $1 text[]: folder names about to be written; returns the customers already holding them.
SELECT id, folder_name
  FROM public.customers
 WHERE folder_name = ANY ($1::text[])

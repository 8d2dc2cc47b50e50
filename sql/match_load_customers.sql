-- Every customer the matcher may link a folder to (it never creates any).
SELECT id, name, phone, folder_name
  FROM public.customers
 ORDER BY id

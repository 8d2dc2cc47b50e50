-- A person's folder -> customer decisions; customer_id NULL means "no customer".
SELECT folder, customer_id
  FROM loader.match_decisions
 ORDER BY folder

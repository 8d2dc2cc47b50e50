-- The remembered links for the inputs digested as $1 (none: match again).
SELECT folders, customer_ids, summary FROM loader.match_memo WHERE key = $1;

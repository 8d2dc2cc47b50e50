-- Remember one matching's links ($2 folders, $3 their customer ids, NULL: none) and its count
-- per status ($4) under the digest $1 of its inputs; only the latest is kept.
WITH older AS (DELETE FROM loader.match_memo WHERE key <> $1)
INSERT INTO loader.match_memo (key, folders, customer_ids, summary)
VALUES ($1, $2, $3, $4)
ON CONFLICT (key) DO UPDATE SET at = now();

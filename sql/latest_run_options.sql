-- The recorded options of the latest run over bucket $1 and prefix $2 not rolled back
-- (verify builds the same cdn_url the run did).
SELECT options
FROM loader.runs
WHERE bucket = $1 AND prefix = $2 AND status <> 'rolled_back'
ORDER BY run_id DESC
LIMIT 1;

-- Folder -> customer of the latest run over bucket $1 and prefix $2 that was not rolled back.
SELECT folder, customer_id
FROM loader.folders
WHERE run_id = (SELECT max(run_id) FROM loader.runs
                WHERE bucket = $1 AND prefix = $2 AND status <> 'rolled_back');

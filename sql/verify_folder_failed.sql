-- A folder whose listing failed: its rows are neither checked nor called orphans.
UPDATE verify_folders SET failed = true WHERE folder = $1;

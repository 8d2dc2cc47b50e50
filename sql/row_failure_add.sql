-- A row that could not be written (isolated by batch splitting), with the reason.
INSERT INTO loader.row_failures (run_id, file_path, folder, reason) VALUES ($1, $2, $3, $4)
ON CONFLICT (run_id, file_path) DO UPDATE SET reason = excluded.reason, at = now();

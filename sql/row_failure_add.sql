-- A row that could not be written (isolated by batch splitting), with the reason.
INSERT INTO loader.row_failures (run_id, file_path, folder, reason) VALUES ($1, $2, $3, $4)
ON CONFLICT (md5(file_path), run_id) DO UPDATE SET reason = excluded.reason, at = now();

SELECT file_path, folder, reason FROM loader.row_failures WHERE run_id = $1 ORDER BY file_path;

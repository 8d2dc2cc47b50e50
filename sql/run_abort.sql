UPDATE loader.runs SET status = 'aborted', finished_at = now()
WHERE run_id = $1 AND status = 'running';

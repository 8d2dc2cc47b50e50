-- A new migrate run; options are stored with secrets already redacted by the caller; $4: its
-- folders are still being registered (see loader.runs.registering).
INSERT INTO loader.runs (bucket, prefix, options, registering) VALUES ($1, $2, $3, $4)
RETURNING run_id;

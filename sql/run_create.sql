-- A new migrate run; options are stored with secrets already redacted by the caller.
INSERT INTO loader.runs (bucket, prefix, options) VALUES ($1, $2, $3)
RETURNING run_id;

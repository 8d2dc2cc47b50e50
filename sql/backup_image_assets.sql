-- Snapshot image_assets for run $1 before it writes anything (--backup, the default).
INSERT INTO loader.backups (run_id, row) SELECT $1, to_jsonb(ia) FROM image_assets AS ia;

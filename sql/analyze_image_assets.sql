-- After a big load, so later plans see the real table size (postgres-upsert-notes.md, trap 5).
ANALYZE image_assets;

-- Autovacuum never analyzes temporary tables: give the planner real row counts.
ANALYZE verify_folders, verify_objects;

-- Make image_assets (and customers.folder_name) equal to the tables $1 and $2 (regclass
-- names; $2 may be NULL); jsonb counts (see loader.backup_restore).
SELECT loader.backup_restore($1::regclass, $2::regclass);

-- The customers part of a backup file, loaded before it is checked and restored.
DROP TABLE IF EXISTS pg_temp.restore_customers;
CREATE TEMP TABLE restore_customers ON COMMIT DROP AS
    SELECT id, folder_name FROM customers WITH NO DATA;

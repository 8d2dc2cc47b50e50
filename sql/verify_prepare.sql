-- Session-local work tables for one `loader verify` (dropped with the connection): each
-- top-level folder with the customer its files must carry, and every listed object, COPYed
-- in as the listing streams so the comparison runs in SQL, whatever the bucket's size.
DROP TABLE IF EXISTS pg_temp.verify_folders, pg_temp.verify_objects, pg_temp.verify_found;
CREATE TEMP TABLE verify_folders (
    folder      text PRIMARY KEY,
    customer_id bigint,
    failed      boolean NOT NULL DEFAULT false
);
-- enc_path: the percent-encoded path the loader puts after the cdn base (media files only).
CREATE TEMP TABLE verify_objects (
    file_path text NOT NULL,
    folder    text NOT NULL,
    media     boolean NOT NULL,
    enc_path  text
);
CREATE TEMP TABLE verify_found (
    finding   text NOT NULL,
    file_path text NOT NULL
);

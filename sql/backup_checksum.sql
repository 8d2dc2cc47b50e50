-- loader.rows_checksum of columns $2 of relation $1 (a name).
SELECT loader.rows_checksum($1::regclass, $2);

-- After a run changed rows, when autovacuum will not (see autovacuum_analyzes_assets.sql): so
-- later plans see the real table size (a plan made for an empty table would keep scanning it
-- sequentially).
ANALYZE image_assets;

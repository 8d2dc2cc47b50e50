-- After a big load, so later plans see the real table size (a plan made for an empty table
-- would keep scanning it sequentially).
ANALYZE image_assets;

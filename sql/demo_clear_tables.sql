-- Demo database only: every customer and image_assets row is demo data, replaced on re-seed
-- (rows a demo migration added included).
TRUNCATE public.customers, public.image_assets

-- Whether the customers table is there (its folder_name is backed up with image_assets).
SELECT to_regclass('customers') IS NOT NULL;

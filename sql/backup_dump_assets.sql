-- What a backup file holds of image_assets: every row, every column.
SELECT * FROM image_assets

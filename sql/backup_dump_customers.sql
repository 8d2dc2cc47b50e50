-- What a backup file holds of customers.
SELECT id, folder_name FROM customers

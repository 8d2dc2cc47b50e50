-- The project's Storage server (loader/devtools/objects_table.py): its bucket $1 in
-- storage.buckets, public or not ($2), for the rows it writes into storage.objects.
INSERT INTO storage.buckets (id, name, public)
VALUES ($1, $1, $2)
    ON CONFLICT (id) DO NOTHING;

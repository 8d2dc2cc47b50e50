-- Whether sync is here at all: its tables, its trigger function and how many of its two
-- triggers are on storage.objects (no sync table is read, so this runs before install).
SELECT to_regclass('loader.sync_settings') IS NOT NULL AS tables,
       to_regprocedure('loader.sync_object()') IS NOT NULL AS function,
       (SELECT count(*) FROM pg_trigger
        WHERE tgrelid = to_regclass('storage.objects')
          AND tgname IN ('loader_sync_insert', 'loader_sync_update'))::int AS triggers,
       to_regclass('storage.objects') IS NOT NULL AS storage_objects;

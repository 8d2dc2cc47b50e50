-- What `loader sync` needs, for the current role: TRIGGER on storage.objects to install
-- (its owner has it), CREATE on schema loader (or on the database, while that schema is
-- missing), and to remove the triggers again, the table's owner role (PostgreSQL lets only
-- the owner drop a trigger).
SELECT current_user AS role,
       current_database() AS database,
       o.oid IS NOT NULL AS has_objects,
       has_table_privilege(o.oid, 'TRIGGER') AS can_trigger,
       pg_get_userbyid(o.relowner) AS owner,
       pg_has_role(o.relowner, 'MEMBER') AS can_drop,
       to_regnamespace('loader') IS NOT NULL AS has_schema,
       CASE WHEN to_regnamespace('loader') IS NOT NULL
            THEN has_schema_privilege('loader', 'CREATE')
            ELSE has_database_privilege(current_database(), 'CREATE') END AS can_create
FROM (SELECT 1) AS one
LEFT JOIN pg_class AS o ON o.oid = to_regclass('storage.objects');

-- Journal the rows the COPY fast path inserted: one entry per folder, in this transaction.
--   $1 run id; per folder: $2 folder, $3 base (common directory of its paths), $5 first index
--   into $4 (1-based) and $6 count; $4 a JSON array of every path minus its folder's base,
--   flat. JSON rather than a text[] parameter: the pool encodes json with orjson, which costs
--   the client a small fraction of asyncpg's text[] encoder (the probe does the same).
WITH flat AS (
    SELECT ARRAY(SELECT json_array_elements_text($4::json)) AS names
)
INSERT INTO loader.journal_inserts (run_id, xid, folder, base, names)
SELECT $1, pg_current_xact_id()::xid, g.folder, g.base, flat.names[g.first:g.first + g.n - 1]
FROM unnest($2::text[], $3::text[], $5::int[], $6::int[]) AS g(folder, base, first, n)
CROSS JOIN flat;

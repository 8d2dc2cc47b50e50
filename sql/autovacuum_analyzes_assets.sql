-- Whether autovacuum keeps image_assets's planner statistics fresh by itself: on for the
-- server, with the activity counters it decides by, and not turned off for the table. Then
-- a run's changes (well past its threshold of 10% of the rows, after a bulk load) get the
-- table analyzed at autovacuum's next round (autovacuum_naptime, a minute by default).
SELECT current_setting('autovacuum')::boolean
       AND current_setting('track_counts')::boolean
       AND coalesce((SELECT o.option_value::boolean
                     FROM pg_class AS c, pg_options_to_table(c.reloptions) AS o
                     WHERE c.oid = 'image_assets'::regclass
                       AND o.option_name = 'autovacuum_enabled'), true);

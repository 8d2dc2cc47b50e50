-- What rollback will do to each row of a run (filled by rollback_plan.sql), for this
-- transaction only.
CREATE TEMP TABLE IF NOT EXISTS loader_rollback_plan (
    action          text NOT NULL,
    file_path       text NOT NULL,
    asset_id        uuid,
    prev_ai_tags    text[],
    prev_cdn_url    text,
    prev_updated_at timestamptz,
    new_ai_tags     text[],
    new_cdn_url     text,
    -- The order the plan is applied in, by ranges (rollback_apply_*.sql), so progress can be
    -- shown: each action takes one range of it (rollback_plan.sql).
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY
) ON COMMIT DROP;

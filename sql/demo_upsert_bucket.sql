-- $1 bucket: the demo bucket, public like the user's (cdn_url is its public object URL).
INSERT INTO storage.buckets (id, name, public)
VALUES ($1, $1, true)
    ON CONFLICT (id) DO UPDATE
   SET public = true, updated_at = now()

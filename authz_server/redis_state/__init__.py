"""Redis state of the hot path: the keyspace, the Lua scripts (one operation per file) and
the code that calls them. Redis holds a projection of Postgres plus window counters,
replay records and the per-shard decision streams."""

"""Zentra Cards ledger writer: consumes the per-shard decision streams and posts
double-entry minor-unit entries to Postgres (issue #3 builds its work; this package holds
its entry point so the process layout is in place)."""

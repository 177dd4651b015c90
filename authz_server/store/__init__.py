"""Postgres, the source of truth for tenants, API keys and cards: pool, migrations, repositories."""

"""Zentra Cards authorization server: the gRPC hot path over Redis, card administration over Postgres."""

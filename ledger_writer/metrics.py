"""Prometheus metrics of the ledger writer (exposed on LEDGER_METRICS_PORT). With several
worker processes (ledger_writer/workers.py) each writes its own and the parent serves their
sum (prometheus-client multiprocess mode); the lag gauges are kept by worker 0 alone."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LAG = Gauge(
    "zentra_ledger_lag_entries",
    "Decision records in a shard's stream not yet posted and acknowledged.",
    ["shard"],
    multiprocess_mode="livemostrecent",
)
BATCH_SIZE = Histogram(
    "zentra_ledger_batch_size_records",
    "Decision records per posted batch.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
COMMIT_SECONDS = Histogram(
    "zentra_ledger_commit_duration_seconds",
    "Time to write and commit one batch in Postgres.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
AUTHORIZATIONS = Counter("zentra_ledger_authorizations_recorded_total", "Authorization records written.")
POSTINGS = Counter("zentra_ledger_postings_total", "Ledger transactions posted, by kind.", ["kind"])
EVENTS = Counter("zentra_ledger_events_total", "Events written to the outbox, by type.", ["type"])
DEAD_LETTERS = Counter("zentra_ledger_dead_letters_total", "Stream entries moved to the dead-letter stream.")
RETRIES = Counter(
    "zentra_ledger_batch_retries_total", "Batches retried because Postgres or Redis failed.", ["dependency"]
)
CLAIMED = Counter("zentra_ledger_claimed_entries_total", "Entries claimed from consumers that went idle.")

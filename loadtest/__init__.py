"""Load tools. `make run` prints a ready `ghz` command for the demo card; the `make bench`
benchmark with its null-server and Redis-only baselines, and ghz configs over many cards,
are issue #4's work. `make bench-ledger` (`ledger_bench`) measures the ledger writer: how
fast it drains a backlog of decisions, and how long it takes to catch up after a burst."""

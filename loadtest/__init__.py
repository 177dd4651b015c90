"""Load tools: `make bench` (python -m loadtest: the real server against a null server, the
Redis step alone and the ledger writer, in one run), `make bench-ledger` (ledger_bench: the
writer's drain rate and catch-up after a burst), and ghz_seed (a ready ghz config over many
cards). `make run` also prints a ghz command for the demo card."""

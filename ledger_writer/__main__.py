"""`ledger-writer` / `python -m ledger_writer`. The consumer, postings and store arrive with
issue #3; until then the entry point says so and exits non-zero, so nothing mistakes it for
a running writer."""

from __future__ import annotations

import sys


def main() -> int:
    print("ledger-writer: not built yet (issue #3); decisions wait in the Redis streams", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

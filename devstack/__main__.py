"""`python -m devstack run|migrate` (also `zentra-devstack`): the commands behind `make run`
and `make migrate`. See devstack/run.py for what each does."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from devstack.run import migrate_only, run_stack


def default_data_dir() -> Path:
    """`.data/` at the repository root (git-ignored) when running from a checkout, else in
    the working directory."""
    checkout = Path(__file__).resolve().parents[1]
    base = checkout if (checkout / "pyproject.toml").exists() else Path.cwd()
    return base / ".data"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one devstack command; returns its exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="The development stack: embedded Redis and Postgres unless REDIS_URL/DATABASE_URL.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="start everything, create demo data, print commands; Ctrl-C stops")
    migrate = commands.add_parser("migrate", help="apply SQL migrations")
    for command in (run, migrate):
        command.add_argument(
            "--data-dir",
            type=Path,
            default=default_data_dir(),
            help="where the embedded servers keep their data (default: .data/ at the repository root)",
        )
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_stack(args.data_dir)
    return migrate_only(args.data_dir)


if __name__ == "__main__":
    sys.exit(main())

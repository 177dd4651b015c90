"""The command line of `authzctl`: global options, one subcommand per RPC, and the argument
types that turn text into request fields. Anything malformed is a usage error (exit 2)
before a call is made; everything the server checks is left to the server."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TypeAlias

from google.protobuf import json_format

from zentra.cards.v1 import types_pb2 as t

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 5.0
# A whole clearing file is one call; at the server's pace of a few thousand records a second this
# covers files of a million rows, and a bigger file should be split (re-sending is safe).
FILE_TIMEOUT_S = 600.0
# A call that takes longer than this is not a CLI call any more; the bound catches typos like 5000.
TIMEOUT_MAX_S = 600.0
# Spend controls are a few hundred bytes; a controls file larger than this is the wrong file.
CONTROLS_FILE_BYTES_MAX = 1 << 20

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

ROLES = {"processor": t.PROCESSOR, "operator": t.OPERATOR, "admin": t.ADMIN}
CHANNELS = {
    "card_present": t.CARD_PRESENT,
    "contactless": t.CONTACTLESS,
    "ecommerce": t.ECOMMERCE,
    "atm": t.ATM,
    "mail_phone": t.MAIL_PHONE,
}


def int64(text: str) -> int:
    """An integer that fits the wire's int64; whether it is a valid amount is the server's call."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not INT64_MIN <= value <= INT64_MAX:
        raise argparse.ArgumentTypeError(f"{value} does not fit in int64")
    return value


def timeout_seconds(text: str) -> float:
    """A per-call deadline in seconds: a number in (0, TIMEOUT_MAX_S]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= TIMEOUT_MAX_S:
        raise argparse.ArgumentTypeError(f"{value:g} is outside (0, {TIMEOUT_MAX_S:g}] seconds")
    return value


def spend_controls(text: str) -> t.SpendControls:
    """SpendControls from proto JSON given inline or, with a leading '@', in a file."""
    what = "the value"
    if text.startswith("@"):
        what = text[1:]
        text = _read_controls_file(Path(what))
    try:
        return json_format.Parse(text, t.SpendControls())
    except json_format.ParseError as error:
        raise argparse.ArgumentTypeError(f"{what} is not SpendControls in proto JSON: {error}") from None


def _read_controls_file(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > CONTROLS_FILE_BYTES_MAX:
            raise argparse.ArgumentTypeError(f"{path} is {size} bytes; at most {CONTROLS_FILE_BYTES_MAX}")
        return path.read_text()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {error.strerror}") from None


def build_parser() -> argparse.ArgumentParser:
    """The full `authzctl` parser. Defaults for --target and --token come from the environment
    now; help texts never show the token's value."""
    parser = argparse.ArgumentParser(
        prog="authzctl",
        description="Call the Zentra Cards gRPC API (tenants, keys, cards, authorizations, clearing files).",
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("AUTHZ_TARGET") or DEFAULT_TARGET,
        help=f"host:port of authz-server (env AUTHZ_TARGET, default {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("AUTHZ_TOKEN") or "",
        help="bearer secret: the admin token for create-tenant/create-key, else an API key (env AUTHZ_TOKEN)",
    )
    parser.add_argument("--json", dest="json_output", action="store_true", help="print the response message as JSON")
    parser.add_argument(
        "--timeout",
        type=timeout_seconds,
        default=None,
        help=f"deadline of the call in seconds (default {DEFAULT_TIMEOUT_S:g}; {FILE_TIMEOUT_S:g} for ingest-clearing)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_tenant_commands(commands)
    _add_card_commands(commands)
    _add_authorize_command(commands)
    _add_clearing_commands(commands)
    return parser


def call_timeout_s(args: argparse.Namespace) -> float:
    """The deadline of the command's call: --timeout if given, else the command's default."""
    if args.timeout is not None:
        return float(args.timeout)
    return FILE_TIMEOUT_S if args.command == "ingest-clearing" else DEFAULT_TIMEOUT_S


# The type of `add_subparsers()`; argparse does not export a public name for it.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_tenant_commands(commands: Subparsers) -> None:
    create_tenant = commands.add_parser("create-tenant", help="create a tenant (admin token)")
    create_tenant.add_argument("tenant_id", metavar="TENANT_ID")
    create_tenant.add_argument("--name", required=True)

    create_key = commands.add_parser(
        "create-key", help="create an API key (admin token); its secret is printed only now"
    )
    create_key.add_argument("tenant_id", metavar="TENANT_ID")
    create_key.add_argument("--role", required=True, choices=sorted(ROLES))
    create_key.add_argument("--label", default="")


def _add_card_commands(commands: Subparsers) -> None:
    issue = commands.add_parser("issue-card", help="issue a card (ADMIN key)")
    issue.add_argument("--customer-ref", required=True)
    issue.add_argument("--account-ref", required=True)
    issue.add_argument("--currency", required=True, help="ISO 4217 code, e.g. USD")
    issue.add_argument("--idempotency-key", help="default: a new random key (so no replay)")
    issue.add_argument("--controls", type=spend_controls, help="SpendControls as proto JSON, or @file.json")

    get = commands.add_parser("get-card", help="show a card (ADMIN or OPERATOR key)")
    get.add_argument("card_id", metavar="CARD_ID")

    update = commands.add_parser("update-controls", help="replace a card's spend controls (ADMIN key)")
    update.add_argument("card_id", metavar="CARD_ID")
    update.add_argument(
        "--controls", type=spend_controls, required=True, help="SpendControls as proto JSON, or @file.json"
    )

    for name, who in (("freeze", "ADMIN or OPERATOR"), ("unfreeze", "ADMIN or OPERATOR"), ("close", "ADMIN")):
        action = commands.add_parser(name, help=f"{name} a card ({who} key)")
        action.add_argument("card_id", metavar="CARD_ID")
        action.add_argument("--reason", default="")


def _add_authorize_command(commands: Subparsers) -> None:
    authorize = commands.add_parser("authorize", help="decide one purchase (PROCESSOR or ADMIN key)")
    authorize.add_argument("card_id", metavar="CARD_ID")
    authorize.add_argument("amount_minor", metavar="AMOUNT_MINOR", type=int64, help="minor units, e.g. 1250")
    authorize.add_argument("--currency", required=True, help="ISO 4217 code, e.g. USD")
    authorize.add_argument("--mcc", required=True, help="merchant category code, 4 digits")
    authorize.add_argument("--country", required=True, help="merchant country, ISO 3166-1 alpha-2")
    authorize.add_argument("--channel", choices=list(CHANNELS), default="card_present")
    authorize.add_argument("--merchant-name", default="")
    authorize.add_argument("--merchant-id", default="")
    authorize.add_argument("--city", default="")
    authorize.add_argument(
        "--authorization-id", help="the replay key; default: a new random 'auth-<hex>' (so no replay)"
    )


def _add_clearing_commands(commands: Subparsers) -> None:
    ingest = commands.add_parser(
        "ingest-clearing",
        help="post a CSV clearing file and print its summary (PROCESSOR or ADMIN key)",
        description="Streams a CSV clearing file (columns: docs/clearing-file.md) to IngestClearingFile and "
        "prints the summary: counts by outcome and every rejected row with its line and reason. "
        "Exit 0 when the file was processed, rejected rows or not. Re-sending a file posts nothing twice.",
    )
    ingest.add_argument("file", metavar="FILE.csv", type=Path, help="a clearing file with a header row")

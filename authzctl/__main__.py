"""`authzctl` / `python -m authzctl`: parse the command line, make one call, print the answer.

Exit status: 0 on an answer (a DECLINE is an answer; a clearing file with rejected rows was
still processed), 1 when the call failed (the gRPC status is printed to stderr as
`error: <CODE>: <details>`), 2 for usage errors (including a clearing file that is missing or
whose header lacks a column)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc

from authzctl import render
from authzctl.clearing_file import ClearingFile, ClearingFileError, accounting_gap, summary_with_file_rejections
from authzctl.cli import build_parser, call_timeout_s
from authzctl.commands import BUILDERS, Stubs, bearer

EXIT_CALL_FAILED = 1


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one subcommand; returns the exit status. Usage errors exit 2 via argparse."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("no credentials: pass --token or set AUTHZ_TOKEN (admin token or API key)")
    if args.command == "ingest-clearing":
        return ingest_clearing(parser, args)
    with grpc.insecure_channel(args.target) as channel:
        call = BUILDERS[args.command](Stubs(channel), args)
        try:
            response = call.rpc(call.request, metadata=bearer(args.token), timeout=call_timeout_s(args))
        except grpc.RpcError as error:
            return call_failed(error)
    print(render.as_json(response) if args.json_output else render.as_text(response))
    return 0


def ingest_clearing(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Streams the clearing file to IngestClearingFile as it is read, and prints the server's
    summary merged with the rows the CLI rejected itself. The summary printed accounts for
    every data row of the file: posted by outcome, a duplicate, or rejected with its line."""
    try:
        clearing_file = ClearingFile.open(args.file)
    except ClearingFileError as error:
        parser.error(f"clearing file {args.file}: {error}")
    with clearing_file, grpc.insecure_channel(args.target) as channel:
        try:
            summary = Stubs(channel).clearing.IngestClearingFile(
                clearing_file.records(), metadata=bearer(args.token), timeout=call_timeout_s(args)
            )
        except grpc.RpcError as error:
            return call_failed(error)
    gap = accounting_gap(summary, clearing_file.sent)
    if gap:
        print(f"error: the summary does not account for the file: {gap}", file=sys.stderr)
        return EXIT_CALL_FAILED
    merged = summary_with_file_rejections(summary, clearing_file)
    assert merged.records == clearing_file.rows, (merged.records, clearing_file.rows)
    print(render.clearing_summary_json(merged) if args.json_output else render.clearing_summary_text(merged))
    return 0


def call_failed(error: grpc.RpcError) -> int:
    print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
    return EXIT_CALL_FAILED


if __name__ == "__main__":
    sys.exit(main())

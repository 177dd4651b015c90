"""`authzctl` / `python -m authzctl`: parse the command line, make one call, print the answer.

Exit status: 0 on an answer (a DECLINE is an answer), 1 when the call failed (the gRPC
status is printed to stderr as `error: <CODE>: <details>`), 2 for usage errors."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import grpc

from authzctl import render
from authzctl.cli import build_parser
from authzctl.commands import BUILDERS, Stubs, bearer

EXIT_CALL_FAILED = 1


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one subcommand; returns the exit status. Usage errors exit 2 via argparse."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("no credentials: pass --token or set AUTHZ_TOKEN (admin token or API key)")
    with grpc.insecure_channel(args.target) as channel:
        call = BUILDERS[args.command](Stubs(channel), args)
        try:
            response = call.rpc(call.request, metadata=bearer(args.token), timeout=args.timeout)
        except grpc.RpcError as error:
            print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
            return EXIT_CALL_FAILED
    print(render.as_json(response) if args.json_output else render.as_text(response))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`authz-server` / `python -m authz_server`: serve the gRPC API until SIGTERM or SIGINT."""

from __future__ import annotations

import sys

import uvloop
from prometheus_client import start_http_server

from authz_server import logs
from authz_server.config import ConfigError, Settings
from authz_server.server import serve


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"authz-server: configuration error: {error}", file=sys.stderr)
        return 2
    if settings.workers != 1:
        # Multi-process serving (SO_REUSEPORT with aggregated metrics) is issue #4's work.
        print("authz-server: AUTHZ_WORKERS > 1 is not supported yet; run one process per port", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level, "authz-server")
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_addr)
    uvloop.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())

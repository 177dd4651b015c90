"""In prometheus-client multiprocess mode, authz-server's metrics do not ask the kernel for the
process id on every write (a system call each), yet a forked child still writes its own file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROGRAM = textwrap.dedent(
    """
    import os, sys
    from authz_server import metrics
    from zentra.cards.v1 import types_pb2 as t

    real_getpid = os.getpid
    def refuse():
        raise AssertionError("os.getpid() called on a metric write")
    os.getpid = refuse
    metrics.decision_counter(t.APPROVE, t.APPROVED).inc()
    metrics.DECISION_SECONDS.observe(0.0004)
    os.getpid = real_getpid
    child = os.fork()
    if child == 0:
        metrics.decision_counter(t.APPROVE, t.APPROVED).inc()
        os._exit(0)
    os.waitpid(child, 0)
    print(real_getpid(), child)
    """
)


def test_metric_writes_use_the_kept_process_id_and_a_fork_renews_it(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    parent, child = done.stdout.split()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert f"counter_{parent}.db" in files and f"counter_{child}.db" in files, files
    assert f"histogram_{parent}.db" in files, files

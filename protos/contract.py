"""Runs ../shared/contract/check.py against protos/ and fails on any problem that is not a
known, issue-tracked gap listed in protos/contract-pending.txt.

The shared checker always checks the whole of DESIGN.md §3, including RPCs that arrive with
later issues (GetAuthorization with the ledger issue, Reverse with the lifecycle one). Those
lines are listed in contract-pending.txt; everything else must be clean. When a pending RPC
lands, its lines must be removed from the list (a pending line that no longer appears fails).
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKER = HERE.parent.parent / "shared" / "contract" / "check.py"
PENDING = HERE / "contract-pending.txt"


def main() -> int:
    if not CHECKER.exists():
        print(f"contract: {CHECKER} not found; skipped (it lives beside the repository in CI)")
        return 0
    result = subprocess.run([sys.executable, str(CHECKER), str(HERE)], capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("contract check:")]
    pending = {line.strip() for line in PENDING.read_text().splitlines() if line.strip() and not line.startswith("#")}
    unexpected = [line for line in lines if line not in pending]
    stale = sorted(pending - set(lines))
    for line in unexpected:
        print(f"contract problem: {line}")
    for line in stale:
        print(f"contract-pending.txt lists a problem that is gone, remove it: {line}")
    if result.returncode not in (0, 1) or result.stderr.strip():
        print(result.stderr)
        return 1
    print(f"contract: {len(lines)} problems, all tracked as pending" if not unexpected else "contract: FAILED")
    return 1 if unexpected or stale else 0


if __name__ == "__main__":
    sys.exit(main())

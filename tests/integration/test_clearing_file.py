"""`authzctl ingest-clearing` posts a clearing file of more than 10,000 rows with every clearing case and malformed rows: every row is accounted for in the summary, each rejected row comes back with its line and reason while the rest go through, the ledger holds exactly one balanced posting per posted row, and ingesting the same file again changes nothing."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz_server.validation import AMOUNT_MINOR_MAX
from authzctl.__main__ import main
from authzctl.clearing_file import COLUMNS
from tests.support import ledger_checks
from tests.support.api import Api, TenantKeys, bearer, new_id
from tests.support.stack import Ledger, ThreadedServer
from zentra.cards.v1 import authorization_pb2, card_pb2, clearing_pb2
from zentra.cards.v1 import types_pb2 as t

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 120  # a 10,000-row file takes seconds; this only bounds a hang

# How many of each case the big file holds. Authorizations: one per exact / over / under group /
# late capture (7,500), spread over the cards.
CARDS = 300
EXACT = 4500
OVER_WITHIN = 900
OVER_BEYOND = 600
UNDER_GROUPS = 1000  # each: one or two non-final clearings, then the final one
LATE = 500
FORCE = 500
REFUNDS = 500
DUPLICATES = 300
MULTILINE_NAME_EVERY = 200  # every 200th merchant name has a quoted line break: its row spans two lines
# Calls in flight at once while setting up; enough to keep the server busy, few enough to stay
# far below its concurrency limit and the decision budget.
CALLS_IN_FLIGHT_MAX = 400

# Reasons the CLI gives for rows it cannot turn into a ClearingRecord (authzctl/clearing_file.py)
# and the server gives for records it refuses (authz_server/validation.py, lifecycle.py).
NOT_AN_INTEGER = "amount_minor: {!r} is not an integer (minor units, e.g. 1250)"
UNKNOWN_KIND = "kind: {!r} is not CAPTURE or REFUND"
NOT_A_BOOLEAN = "is_final: {!r} is not true or false"
COLUMN_COUNT = "the row has {} columns; the header has 12"
BAD_CURRENCY = "currency: must be an assigned ISO 4217 currency code in upper case (e.g. USD)"
NO_SUCH_CARD = "card_id {!r}: no such card"
AMOUNT_OUT_OF_RANGE = f"amount_minor: must be between 1 and {AMOUNT_MINOR_MAX} minor units"

OUTCOMES = ("matched", "mismatched", "force_posted", "late_captures", "refunds")
MATCHED, MISMATCHED, FORCE_POSTED = clearing_pb2.MATCHED, clearing_pb2.MISMATCHED, clearing_pb2.FORCE_POSTED
LATE_CAPTURE, REFUNDED = clearing_pb2.LATE_CAPTURE, clearing_pb2.REFUNDED
COUNTER_OF_OUTCOME: dict[int, str] = dict(
    zip((MATCHED, MISMATCHED, FORCE_POSTED, LATE_CAPTURE, REFUNDED), OUTCOMES, strict=True)
)
REVIEW_KIND_OF_OUTCOME: dict[int, str] = {
    MISMATCHED: "CLEARING_MISMATCH",
    FORCE_POSTED: "FORCE_POST",
    LATE_CAPTURE: "LATE_CAPTURE",
}


def authzctl(target: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs `python -m authzctl --target <target> --token <token> <args>` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "authzctl", "--target", target, "--token", token, *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=REPO_ROOT,
    )


def ingest_json(server: ThreadedServer, token: str, path: Path) -> dict[str, Any]:
    result = authzctl(server.target, token, "--json", "ingest-clearing", str(path))
    assert result.returncode == 0, f"authzctl failed ({result.returncode}): {result.stderr}"
    assert result.stderr == "", f"authzctl wrote to stderr on success: {result.stderr}"
    return dict(json.loads(result.stdout))


def concurrently(calls: Sequence[Callable[[], grpc.Future]]) -> list[Any]:
    """Starts the calls at most CALLS_IN_FLIGHT_MAX at a time; their results in order."""
    results: list[Any] = []
    for start in range(0, len(calls), CALLS_IN_FLIGHT_MAX):
        futures = [call() for call in calls[start : start + CALLS_IN_FLIGHT_MAX]]
        results.extend(future.result() for future in futures)
    return results


# ---- The reference model: what lua/clear.lua decides for each record, in file order ----


@dataclass
class Hold:
    """An approved authorization as the clearing sees it: approved amount and what is still held."""

    approved: int
    held: int


@dataclass(frozen=True)
class Posted:
    """What a posted row must come back as (the columns of the `clearings` table)."""

    outcome: int
    from_hold: int = 0
    from_balance: int = 0
    released: int = 0
    delta: int = 0
    review: bool = False


def clear(hold: Hold, amount: int, final: bool, tolerance_bps: int) -> Posted:
    """The matching rules of DESIGN "Ledger semantics" (proto ClearingOutcome), on `hold` in place."""
    if hold.held == 0:
        return Posted(LATE_CAPTURE, from_balance=amount, review=True)
    from_hold = min(amount, hold.held)
    delta = amount - hold.held
    hold.held -= from_hold
    released = hold.held if final else 0
    if final:
        hold.held = 0
    review = (final or delta > 0) and abs(delta) * 10_000 > tolerance_bps * hold.approved
    outcome = MATCHED if delta == 0 else MISMATCHED
    return Posted(outcome, from_hold, amount - from_hold, released, delta, review)


@dataclass
class Row:
    """One data row of the file and, when known up front, why it must be rejected."""

    values: list[str]
    rejected_because: str = ""
    sort_key: float = 0.0
    line: int = 0

    @property
    def clearing_id(self) -> str:
        return self.values[0] if len(self.values) == len(COLUMNS) else ""


@dataclass
class Expected:
    """The summary, rejections and postings the whole file must produce."""

    counts: Counter[str] = field(default_factory=Counter)
    rejections: dict[int, tuple[str, str]] = field(default_factory=dict)
    posted: dict[str, Posted] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        keys = (*OUTCOMES, "duplicates", "rejected", "under_review", "records")
        return {key: self.counts[key] for key in keys}


def expected_from(rows: Iterable[Row], holds: dict[str, Hold], tolerance_bps: int) -> Expected:
    """Runs the file through the model in file order (so several clearings of one authorization,
    and a row before its duplicate, are taken in the order the server takes them)."""
    expected = Expected()
    for row in rows:
        expected.counts["records"] += 1
        if row.rejected_because:
            expected.counts["rejected"] += 1
            expected.rejections[row.line] = (row.clearing_id, row.rejected_because)
            continue
        value = dict(zip(COLUMNS, row.values, strict=True))
        if value["clearing_id"] in expected.posted:
            expected.counts["duplicates"] += 1
            continue
        amount, final = int(value["amount_minor"]), value["is_final"] == "true"
        if value["kind"] == "REFUND":
            posted = Posted(REFUNDED)
        elif not value["authorization_id"]:
            posted = Posted(FORCE_POSTED, from_balance=amount, review=True)
        else:
            posted = clear(holds[value["authorization_id"]], amount, final, tolerance_bps)
        expected.posted[value["clearing_id"]] = posted
        expected.counts[COUNTER_OF_OUTCOME[posted.outcome]] += 1
        expected.counts["under_review"] += posted.review
    return expected


# ---- Building the file through the public API ----


@dataclass
class Authorized:
    authorization_id: str
    card_id: str
    amount: int


class FileBuilder:
    """Issues cards and authorizations for the rows it is asked for, and lays the rows out in a
    random order that keeps the clearings of one authorization in sequence."""

    def __init__(self, api: Api, tenant: TenantKeys, rng: random.Random) -> None:
        self.api, self.tenant, self.rng = api, tenant, rng
        self.rows: list[Row] = []
        self.holds: dict[str, Hold] = {}
        self._names = 0
        issue = [
            lambda: api.cards.IssueCard.future(
                card_pb2.IssueCardRequest(
                    idempotency_key=new_id("issue"), customer_ref="cust-1", account_ref=new_id("acct"),
                    currency="USD", spend_controls=t.SpendControls(),
                ),
                metadata=bearer(tenant.admin),
            )
        ] * CARDS  # fmt: skip
        self.card_ids = [card.card_id for card in concurrently(issue)]

    def authorize(self, amounts: Sequence[int]) -> list[Authorized]:
        planned = [(self.rng.choice(self.card_ids), amount) for amount in amounts]
        requests = [Api.authorize_request(card_id, amount) for card_id, amount in planned]
        answers = concurrently([self._call(self.api.authz.Authorize, request) for request in requests])
        assert all(a.decision == t.APPROVE for a in answers), "cards without controls approve every purchase"
        authorized = [Authorized(r.authorization_id, r.card_id, r.amount_minor) for r in requests]
        for a in authorized:
            self.holds[a.authorization_id] = Hold(a.amount, a.amount)
        return authorized

    def reverse(self, authorized: Sequence[Authorized]) -> None:
        requests = [
            authorization_pb2.ReverseRequest(reversal_id=new_id("rev"), authorization_id=a.authorization_id)
            for a in authorized
        ]
        answers = concurrently([self._call(self.api.authz.Reverse, request) for request in requests])
        for answer, a in zip(answers, authorized, strict=True):
            assert (answer.released_minor, answer.remaining_hold_minor) == (a.amount, 0)
            self.holds[a.authorization_id].held = 0

    def _call(self, method: Any, request: Any) -> Callable[[], grpc.Future]:
        return lambda: method.future(request, metadata=bearer(self.tenant.processor))

    def merchant_name(self) -> str:
        # Commas and quotes need CSV quoting; a few names span two lines inside their quotes.
        self._names += 1
        if self._names % MULTILINE_NAME_EVERY == 0:
            return 'Cafe "North",\nBoston Harbor'
        return 'Cafe "Bistro", Boston'

    def values(
        self, card_id: str, amount: int | str, authorization_id: str = "", kind: str = "CAPTURE", final: str = "true",
        currency: str = "USD",
    ) -> list[str]:  # fmt: skip
        merchant = [new_id("m"), self.merchant_name(), "5812", "US", "Boston"]
        return [new_id("clr"), authorization_id, card_id, str(amount), currency, *merchant, kind, final]

    def add(self, *group: Row) -> None:
        """Adds rows that must stay in this order, each at a random place in the file."""
        for row, key in zip(group, sorted(self.rng.random() for _ in group), strict=True):
            row.sort_key = key
            self.rows.append(row)

    def add_duplicates(self, count: int) -> None:
        """Repeats `count` rows that will be posted, each somewhere after its original."""
        originals = [row for row in self.rows if not row.rejected_because]
        for original in self.rng.sample(originals, count):
            key = original.sort_key + (1 - original.sort_key) * self.rng.random()
            self.rows.append(Row(list(original.values), sort_key=key))

    def write(self, path: Path) -> list[Row]:
        """Writes the header and the rows in file order, noting each row's first physical line."""
        self.rows.sort(key=lambda row: row.sort_key)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        chunks, line = [buffer.getvalue()], 2
        for row in self.rows:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(row.values)
            row.line = line
            chunks.append(buffer.getvalue())
            line += chunks[-1].count("\n")
        path.write_text("".join(chunks), encoding="utf-8")
        return self.rows


def build_big_file(api: Api, tenant: TenantKeys, rng: random.Random, path: Path) -> tuple[list[Row], dict[str, Hold]]:
    """The 10,000-row file with every case; returns its rows in file order and the holds."""
    files = FileBuilder(api, tenant, rng)
    amounts = [rng.randrange(1_000, 60_000) for _ in range(EXACT + OVER_WITHIN + OVER_BEYOND + UNDER_GROUPS + LATE)]
    authorized = files.authorize(amounts)
    exact, rest = authorized[:EXACT], authorized[EXACT:]
    over_within, rest = rest[:OVER_WITHIN], rest[OVER_WITHIN:]
    over_beyond, rest = rest[:OVER_BEYOND], rest[OVER_BEYOND:]
    under, late = rest[:UNDER_GROUPS], rest[UNDER_GROUPS:]
    files.reverse(late)

    for a in exact:
        files.add(Row(files.values(a.card_id, a.amount, a.authorization_id)))
    for a in over_within:  # a tip of up to 20% (exactly 20% is still within)
        tip = a.amount // 5 if rng.random() < 0.1 else rng.randrange(1, a.amount // 5)
        files.add(Row(files.values(a.card_id, a.amount + tip, a.authorization_id)))
    for a in over_beyond:
        files.add(
            Row(files.values(a.card_id, a.amount + rng.randrange(a.amount // 5 + 1, 2 * a.amount), a.authorization_id))
        )
    for i, a in enumerate(under):
        pieces = [rng.randrange(1, a.amount // 4) for _ in range(rng.choice((1, 2)))]
        left = a.amount - sum(pieces)
        # The final clearing takes exactly what is left, a little less, a lot less, or more.
        final = (left, max(1, left - left // 20), max(1, left // 3), left + a.amount // 10)[i % 4]
        group = [Row(files.values(a.card_id, piece, a.authorization_id, final="false")) for piece in pieces]
        files.add(*group, Row(files.values(a.card_id, final, a.authorization_id)))
    for a in late:
        files.add(Row(files.values(a.card_id, a.amount, a.authorization_id)))
    for _ in range(FORCE):
        files.add(Row(files.values(rng.choice(files.card_ids), rng.randrange(100, 20_000))))
    for i in range(REFUNDS):  # half of them name the authorization they give money back for
        a = rng.choice(exact)
        files.add(
            Row(files.values(a.card_id, rng.randrange(100, a.amount), a.authorization_id if i % 2 else "", "REFUND"))
        )
    add_malformed_rows(files, rng)
    files.add_duplicates(DUPLICATES)
    return files.write(path), files.holds


def add_malformed_rows(files: FileBuilder, rng: random.Random) -> None:
    """Rows the CLI cannot send (bad amount, unknown kind, is_final, column count) and rows the
    server refuses (currency 'usd', an unknown card, amount 0)."""
    card = files.card_ids[0]
    for i in range(10):
        for text in ("12.50", "abc", "", "1e3"):
            files.add(Row(files.values(card, text), NOT_AN_INTEGER.format(text)))
        files.add(Row(files.values(card, 500, kind="VOID"), UNKNOWN_KIND.format("VOID")))
        files.add(Row(files.values(card, 500, kind="capture"), UNKNOWN_KIND.format("capture")))
        files.add(Row(files.values(card, 500, final="yes"), NOT_A_BOOLEAN.format("yes")))
        short = files.values(card, 500)[: rng.randrange(1, 12)]
        files.add(Row(short, COLUMN_COUNT.format(len(short))))
        files.add(Row([*files.values(card, 500), "extra"], COLUMN_COUNT.format(13)))
        files.add(Row(files.values(card, 500, currency="usd"), BAD_CURRENCY))
        unknown = f"card_unknown_{i}"
        files.add(Row(files.values(unknown, 500), NO_SUCH_CARD.format(unknown)))
        files.add(Row(files.values(card, 0), AMOUNT_OUT_OF_RANGE))


# ---- Reading the outcome back ----


def summary_counts(summary: dict[str, Any]) -> dict[str, int]:
    """The summary's counts as ints (proto JSON writes int64 as strings)."""
    keys = (*OUTCOMES, "duplicates", "rejected", "under_review", "records")
    return {key: int(summary[key]) for key in keys}


def rejections_of(summary: dict[str, Any]) -> dict[int, tuple[str, str]]:
    return {int(r["line"]): (r.get("clearing_id", ""), r["reason"]) for r in summary["rejections"]}


def ledger_snapshot(ledger: Ledger, tenant_id: str) -> dict[str, list[str]]:
    """Everything the ledger writer wrote for the tenant, table by table, in a stable order."""
    tables = ("ledger_transactions", "ledger_entries", "clearings", "reviews", "authorizations", "events")
    return {
        table: sorted(
            repr(tuple(row)) for row in ledger.fetch(f"SELECT * FROM {table} WHERE tenant_id = $1", tenant_id)
        )
        for table in tables
    }


def posted_clearings(ledger: Ledger, tenant_id: str) -> dict[str, Posted]:
    rows = ledger.fetch(
        """SELECT clearing_id, outcome, from_hold_minor, from_balance_minor, released_minor, delta_minor, review_id
           FROM clearings WHERE tenant_id = $1""",
        tenant_id,
    )
    return {
        r["clearing_id"]: Posted(
            r["outcome"], r["from_hold_minor"], r["from_balance_minor"], r["released_minor"], r["delta_minor"],
            r["review_id"] is not None,
        )
        for r in rows
    }  # fmt: skip


@pytest.fixture
def seed() -> int:
    """The file's seed: CLEARING_FILE_SEED to reproduce a failure, else a fresh one (printed)."""
    value = int(os.environ.get("CLEARING_FILE_SEED") or random.randrange(1 << 32))
    print(f"clearing file seed: CLEARING_FILE_SEED={value}")
    return value


def test_a_ten_thousand_row_file_is_accounted_for_and_ingesting_it_again_changes_nothing(
    api: Api, tenant: TenantKeys, server: ThreadedServer, ledger: Ledger, tmp_path: Path, seed: int
) -> None:
    path = tmp_path / "clearing.csv"
    rows, holds = build_big_file(api, tenant, random.Random(seed), path)
    expected = expected_from(rows, holds, server.settings.clearing_tolerance_bps)
    assert len(rows) >= 10_000 and len(expected.rejections) == 120
    assert all(expected.counts[key] for key in (*OUTCOMES, "duplicates", "rejected", "under_review"))

    first = ingest_json(server, tenant.processor, path)

    assert summary_counts(first) == expected.summary()
    assert sum(int(first[key]) for key in (*OUTCOMES, "duplicates", "rejected")) == len(rows), "every row accounted for"
    assert rejections_of(first) == expected.rejections, "each malformed row with its line and reason"
    assert [int(r["line"]) for r in first["rejections"]] == sorted(expected.rejections), "in line order"

    ledger.drain()
    ledger_checks.assert_balanced(ledger.fetch, [tenant.tenant_id])
    ledger_checks.assert_reserved_matches_holds(ledger.fetch, [tenant.tenant_id])
    [posted] = ledger.fetch(
        "SELECT count(*) AS n FROM ledger_transactions WHERE tenant_id = $1 AND kind IN ('clearing', 'refund')",
        tenant.tenant_id,
    )
    assert posted["n"] == len(expected.posted), "one clearing or refund transaction per posted row"
    assert posted_clearings(ledger, tenant.tenant_id) == expected.posted, "each row posted as the rules say"
    reviews = Counter(
        r["kind"] for r in ledger.fetch("SELECT kind FROM reviews WHERE tenant_id = $1", tenant.tenant_id)
    )
    assert reviews == Counter(REVIEW_KIND_OF_OUTCOME[p.outcome] for p in expected.posted.values() if p.review)
    assert set(reviews) == {"CLEARING_MISMATCH", "FORCE_POST", "LATE_CAPTURE"}
    before = ledger_snapshot(ledger, tenant.tenant_id)

    again = ingest_json(server, tenant.processor, path)

    assert summary_counts(again) == {
        **{key: 0 for key in OUTCOMES}, "under_review": 0,
        "duplicates": len(rows) - len(expected.rejections), "rejected": len(expected.rejections),
        "records": len(rows),
    }  # fmt: skip
    assert rejections_of(again) == expected.rejections
    ledger.drain()
    assert ledger_snapshot(ledger, tenant.tenant_id) == before, "re-ingesting the file changed the ledger"


def test_the_human_summary_lists_totals_and_the_rejected_line(
    api: Api, tenant: TenantKeys, server: ThreadedServer, tmp_path: Path
) -> None:
    card = api.issue_card(tenant)
    auth = api.authorize(tenant.processor, card.card_id, 1000)
    merchant = ["m-1", "Cafe", "5812", "US", "Boston"]
    exact = ["clr-h-1", auth.authorization_id, card.card_id, "1000", "USD", *merchant, "CAPTURE", "true"]
    rows = [
        exact,
        [new_id("clr"), "", card.card_id, "700", "USD", *merchant, "CAPTURE", "true"],
        ["clr-h-bad", "", card.card_id, "7.00", "USD", *merchant, "CAPTURE", "true"],
        [new_id("clr"), auth.authorization_id, card.card_id, "300", "USD", *merchant, "REFUND", "false"],
        exact,
    ]
    path = tmp_path / "small.csv"
    path.write_text("\n".join(",".join(row) for row in [list(COLUMNS), *rows]) + "\n")

    result = authzctl(server.target, tenant.processor, "ingest-clearing", str(path))

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "records        5",
        "matched        1",
        "mismatched     0",
        "force-posted   1",
        "late captures  0",
        "refunds        1",
        "duplicates     1",
        "under review   1",
        "rejected       1",
        "rejected rows:",
        "line 4  clr-h-bad  " + NOT_AN_INTEGER.format("7.00"),
    ]


def test_usage_errors_exit_2_and_call_errors_exit_1(
    api: Api, tenant: TenantKeys, server: ThreadedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*args: str, token: str = tenant.processor) -> tuple[int, str]:
        try:
            status = main(["--target", server.target, "--token", token, "ingest-clearing", *args])
        except SystemExit as exit:
            status = int(exit.code or 0)
        return status, capsys.readouterr().err

    missing = run(str(tmp_path / "nope.csv"))
    assert missing[0] == 2 and "nope.csv: cannot be read: No such file or directory" in missing[1]
    (tmp_path / "empty.csv").write_text("")
    empty = run(str(tmp_path / "empty.csv"))
    assert empty[0] == 2 and "the file is empty; a header row is required" in empty[1]
    (tmp_path / "header.csv").write_text(",".join(COLUMNS[:-1]) + "\n")
    header = run(str(tmp_path / "header.csv"))
    assert header[0] == 2 and "the header lacks the column(s) is_final" in header[1]
    (tmp_path / "ok.csv").write_text(",".join(COLUMNS) + "\n")
    status, err = run(str(tmp_path / "ok.csv"), token=tenant.operator)
    assert status == 1 and err.startswith("error: PERMISSION_DENIED: "), err


def test_columns_in_any_order_blank_lines_bad_bytes_and_bad_quoting(
    api: Api, tenant: TenantKeys, server: ThreadedServer, tmp_path: Path
) -> None:
    card = api.issue_card(tenant)

    def row(clearing_id: str, name: str, kind: str = "CAPTURE") -> str:
        values = [clearing_id, "", card.card_id, "700", "USD", "m-1", name, "5812", "US", "Boston", kind, "true"]
        return ",".join(reversed(values))

    text = "\n".join(
        [
            ",".join(reversed(COLUMNS)),
            row("clr-o-1", "Cafe"),
            "",
            row("clr-o-2", "Caf\udcff"),  # the byte 0xFF, not UTF-8
            row("clr-o-3", '"Cafe\nNorth"'),  # lines 5 and 6
            row("clr-o-4", '"Cafe"x'),
            row("clr-o-5", "Cafe", "REFUND"),
        ]
    )
    path = tmp_path / "odd.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8", "surrogateescape") + b"\n")

    summary = ingest_json(server, tenant.processor, path)

    assert summary_counts(summary) == {
        "matched": 0, "mismatched": 0, "force_posted": 2, "late_captures": 0, "refunds": 1, "duplicates": 0,
        "rejected": 2, "under_review": 2, "records": 5,
    }  # fmt: skip
    assert rejections_of(summary) == {
        4: ("clr-o-2", "the row is not valid UTF-8"),
        7: ("", "the row is not valid CSV: ',' expected after '\"'"),
    }

"""Clearing files (docs/clearing-file.md): a CSV with a header row, one clearing record per row,
read lazily into ClearingRecords for IngestClearingFile.

A row that cannot even become a ClearingRecord (wrong column count, an amount that is not an
integer, an unknown kind, is_final not true/false, bytes that are not UTF-8, broken quoting)
is rejected here with its line and the reason, and never sent; every other row is sent with
`line` set, and whether it is a valid clearing is the server's call. Line numbers are physical
lines of the file, the header being line 1; a row whose quoted field spans several lines is
known by its first."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from authzctl.cli import INT64_MAX, INT64_MIN
from zentra.cards.v1 import clearing_pb2
from zentra.cards.v1 import types_pb2 as t

# The header names, in the order the documentation lists them; a file may order them freely.
COLUMNS = (
    "clearing_id",
    "authorization_id",
    "card_id",
    "amount_minor",
    "currency",
    "merchant_id",
    "merchant_name",
    "mcc",
    "merchant_country",
    "merchant_city",
    "kind",
    "is_final",
)
KINDS = {"CAPTURE": clearing_pb2.CAPTURE, "REFUND": clearing_pb2.REFUND}
FINALITY = {"true": True, "false": False}
# The server lists at most this many of its rejections; the CLI keeps the same bound for its own,
# so a file of garbage cannot grow the client's memory with the file (the counts stay exact).
REJECTIONS_LISTED_MAX = 10_000
# A rejected value is quoted in the reason; longer ones are cut so one bad row cannot flood the output.
QUOTED_VALUE_CHARS_MAX = 40

_INTEGER = re.compile(r"-?[0-9]+")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


class ClearingFileError(Exception):
    """The file cannot be read as a clearing file at all (no such file, no header, a header
    without the required columns): a usage error, and nothing was sent."""


class RowRejected(Exception):
    """This row cannot be turned into a ClearingRecord; `str()` is the reason, naming the column."""


def _quoted(value: str) -> str:
    if len(value) > QUOTED_VALUE_CHARS_MAX:
        value = value[:QUOTED_VALUE_CHARS_MAX] + "..."
    return repr(value)


def _is_utf8(value: str) -> bool:
    # The file is read with errors="surrogateescape": bytes that are not UTF-8 arrive as lone
    # surrogates U+DC80..U+DCFF, so a bad row is rejected without losing the rest of the file.
    return value.isascii() or not _NOT_UTF8.search(value)


def column_positions(header: Sequence[str]) -> dict[str, int]:
    """Where each column sits in a row, from the header row. Raises ClearingFileError when a
    column is missing, unknown or named twice."""
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise ClearingFileError(f"the header lacks the column(s) {', '.join(missing)}")
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise ClearingFileError(f"the header has unknown column(s) {', '.join(map(_quoted, unknown))}")
    if len(set(header)) != len(header):
        raise ClearingFileError("the header names a column more than once")
    return {name: header.index(name) for name in COLUMNS}


def clearing_record(row: Sequence[str], line: int, positions: dict[str, int]) -> clearing_pb2.ClearingRecord:
    """The ClearingRecord of one data row, with `line` set. Values are taken as written (no
    trimming); only what the record's types need is checked here. Raises RowRejected."""
    if len(row) != len(positions):
        raise RowRejected(f"the row has {len(row)} columns; the header has {len(positions)}")
    if not all(_is_utf8(value) for value in row):
        raise RowRejected("the row is not valid UTF-8")
    value = {name: row[at] for name, at in positions.items()}
    amount_text = value["amount_minor"]
    if not _INTEGER.fullmatch(amount_text):
        raise RowRejected(f"amount_minor: {_quoted(amount_text)} is not an integer (minor units, e.g. 1250)")
    amount = int(amount_text)
    if not INT64_MIN <= amount <= INT64_MAX:
        raise RowRejected(f"amount_minor: {_quoted(amount_text)} does not fit in int64")
    kind = KINDS.get(value["kind"])
    if kind is None:
        raise RowRejected(f"kind: {_quoted(value['kind'])} is not CAPTURE or REFUND")
    final = FINALITY.get(value["is_final"])
    if final is None:
        raise RowRejected(f"is_final: {_quoted(value['is_final'])} is not true or false")
    return clearing_pb2.ClearingRecord(
        clearing_id=value["clearing_id"],
        authorization_id=value["authorization_id"],
        card_id=value["card_id"],
        amount_minor=amount,
        currency=value["currency"],
        merchant=t.Merchant(
            id=value["merchant_id"],
            name=value["merchant_name"],
            mcc=value["mcc"],
            country=value["merchant_country"],
            city=value["merchant_city"],
        ),
        kind=kind,
        is_final=final,
        line=line,
    )


class ClearingFile:
    """An open clearing file whose header has been checked. `records()` yields the sendable rows
    one at a time (the file is read once, never held whole); the rows it could not send are
    counted in `rejected` and listed (up to REJECTIONS_LISTED_MAX) in `rejections`."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._reader = csv.reader(stream, strict=True)
        self.rows = 0  # data rows read, sent or not
        self.sent = 0
        self.rejected = 0
        self.rejections: list[clearing_pb2.ClearingRejection] = []
        try:
            header = next(self._reader, None)
        except csv.Error as error:
            raise ClearingFileError(f"the header row is not valid CSV: {error}") from None
        if header is None:
            raise ClearingFileError("the file is empty; a header row is required")
        self._positions = column_positions(header)

    @classmethod
    def open(cls, path: Path) -> ClearingFile:
        """Opens `path` (UTF-8, an optional byte order mark) and reads its header. Raises
        ClearingFileError when it cannot be read or its header is wrong; the caller closes it."""
        try:
            # newline="" as the csv module requires, so quoted line breaks survive.
            stream = path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
        except OSError as error:
            raise ClearingFileError(f"cannot be read: {error.strerror}") from None
        try:
            return cls(stream)
        except BaseException:
            stream.close()
            raise

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> ClearingFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def records(self) -> Iterator[clearing_pb2.ClearingRecord]:
        """The file's sendable rows in file order, each with its line. Blank lines are skipped."""
        while True:
            line = self._reader.line_num + 1  # where the next row starts
            try:
                row = next(self._reader)
            except StopIteration:
                return
            except csv.Error as error:
                self.rows += 1
                self._reject(line, "", f"the row is not valid CSV: {error}")
                continue
            if not row:
                continue
            self.rows += 1
            try:
                record = clearing_record(row, line, self._positions)
            except RowRejected as error:
                clearing_id = row[self._positions["clearing_id"]] if len(row) == len(self._positions) else ""
                self._reject(line, clearing_id, str(error))
                continue
            self.sent += 1
            yield record

    def _reject(self, line: int, clearing_id: str, reason: str) -> None:
        if not _is_utf8(clearing_id):
            clearing_id = ""  # a protobuf string cannot carry it; the line still names the row
        self.rejected += 1
        if len(self.rejections) < REJECTIONS_LISTED_MAX:
            self.rejections.append(clearing_pb2.ClearingRejection(line=line, clearing_id=clearing_id, reason=reason))


def summary_with_file_rejections(
    summary: clearing_pb2.ClearingSummary, file: ClearingFile
) -> clearing_pb2.ClearingSummary:
    """The server's summary of what it was sent, plus the rows the CLI rejected itself: counted
    in `records` and `rejected`, and listed among the rejections in line order."""
    merged = clearing_pb2.ClearingSummary()
    merged.CopyFrom(summary)
    merged.records += file.rejected
    merged.rejected += file.rejected
    rejections = sorted([*summary.rejections, *file.rejections], key=lambda rejection: rejection.line)
    del merged.rejections[:]
    merged.rejections.extend(rejections)
    return merged


def accounting_gap(summary: clearing_pb2.ClearingSummary, sent: int) -> str:
    """Why the server's summary does not account for the `sent` records, or "" when it does:
    the contract is that each one is posted (by outcome), a duplicate, or rejected."""
    if summary.records != sent:
        return f"the server counted {summary.records} records; {sent} were sent"
    accounted = (
        summary.matched
        + summary.mismatched
        + summary.force_posted
        + summary.late_captures
        + summary.refunds
        + summary.duplicates
        + summary.rejected
    )
    if accounted != sent:
        return f"the server's outcomes add up to {accounted} records; {sent} were sent"
    return ""

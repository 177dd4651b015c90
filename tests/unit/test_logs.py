"""JSON log lines carry the decision's ids (decision, authorization, tenant, card) and the
fail-closed warning is such a line; nothing in those fields is a secret."""

from __future__ import annotations

import io
import json
import logging

from authz_server import logs
from authz_server.decisions import decision_log_fields
from zentra.cards.v1 import authorization_pb2


def test_json_lines_carry_the_decision_ids() -> None:
    stream = io.StringIO()
    logs.configure("json", "INFO", "test")
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        request = authorization_pb2.AuthorizeRequest(authorization_id="auth-1", card_id="card_abc")
        logging.getLogger("authz_server.decisions").warning(
            "decision failed closed (%s): %s",
            "timeout",
            "TimeoutError",
            extra=decision_log_fields("acme", request, "7f.1"),
        )
    finally:
        logging.getLogger().handlers.clear()
    line = json.loads(stream.getvalue())
    assert line["msg"] == "decision failed closed (timeout): TimeoutError"
    assert (line["decision_id"], line["authorization_id"], line["tenant_id"], line["card_id"]) == (
        "7f.1", "auth-1", "acme", "card_abc",
    )  # fmt: skip
    assert line["level"] == "WARNING" and line["ts"].endswith("Z")

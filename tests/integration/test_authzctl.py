"""authzctl drives the real API end to end and reports answers and errors the way its users and scripts rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from authzctl.__main__ import main
from tests.support.api import Api, TenantKeys, new_id
from tests.support.stack import ADMIN_TOKEN, ThreadedServer
from zentra.cards.v1 import types_pb2 as t

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 60  # a CLI call answers in well under a second; this only bounds a hang


def authzctl(
    target: str, token: str | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs `python -m authzctl --target <target> [--token <token>] <args>` as a user would."""
    credentials = ["--token", token] if token is not None else []
    return subprocess.run(
        [sys.executable, "-m", "authzctl", "--target", target, *credentials, *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=REPO_ROOT,
        env=env,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"authzctl failed ({result.returncode}): {result.stderr}"
    assert result.stderr == "", f"authzctl wrote to stderr on success: {result.stderr}"
    return result.stdout


def purchase(card_id: str, amount_minor: int = 1250, *extra: str) -> list[str]:
    return [
        "authorize",
        card_id,
        str(amount_minor),
        "--currency",
        "USD",
        "--mcc",
        "5812",
        "--country",
        "US",
        *extra,
    ]


def test_admin_sets_up_a_tenant_and_a_purchase_is_approved(server: ThreadedServer) -> None:
    target = server.target
    tenant_id = new_id("cli")

    created = succeeded(authzctl(target, ADMIN_TOKEN, "create-tenant", tenant_id, "--name", "CLI Test"))
    assert created.startswith(f"tenant_id={tenant_id}  name=CLI Test  created_at=")

    admin_key = json.loads(
        succeeded(authzctl(target, ADMIN_TOKEN, "--json", "create-key", tenant_id, "--role", "admin"))
    )
    assert (admin_key["tenant_id"], admin_key["role"]) == (tenant_id, "ADMIN")
    processor_text = succeeded(
        authzctl(target, ADMIN_TOKEN, "create-key", tenant_id, "--role", "processor", "--label", "pos")
    )
    assert "role=PROCESSOR  label=pos" in processor_text
    processor_secret = next(
        line.removeprefix("secret=") for line in processor_text.splitlines() if line.startswith("secret=")
    )

    controls = '{"spending_limits":[{"interval":"DAILY","amount_minor":"500000"}],"blocked_mccs":["7995"]}'
    card = json.loads(
        succeeded(
            authzctl(
                target, admin_key["secret"], "--json", "issue-card",
                "--customer-ref", "cust-1", "--account-ref", new_id("acct"), "--currency", "USD",
                "--controls", controls,
            )
        )
    )  # fmt: skip
    assert (card["state"], card["currency"], card["policy_version"]) == ("ACTIVE", "USD", "1")

    shown = succeeded(authzctl(target, admin_key["secret"], "get-card", card["card_id"]))
    assert shown.splitlines()[0] == f"card_id={card['card_id']}  state=ACTIVE  currency=USD  policy_version=1"
    assert "controls: DAILY amount<=500000; blocked_mccs=7995" in shown

    approved = succeeded(authzctl(target, processor_secret, *purchase(card["card_id"], 1250)))
    assert approved.startswith("APPROVE  APPROVED  code=00  authorization_id=auth-")
    assert approved.rstrip().endswith("policy_version=1")

    as_json = json.loads(succeeded(authzctl(target, processor_secret, "--json", *purchase(card["card_id"]))))
    assert (as_json["decision"], as_json["reason"], as_json["response_code"]) == ("APPROVE", "APPROVED", "00")
    assert as_json["authorization_id"].startswith("auth-")


def test_a_retry_with_the_same_authorization_id_says_replayed(
    server: ThreadedServer, api: Api, tenant: TenantKeys
) -> None:
    card = api.issue_card(tenant)
    retry = purchase(card.card_id, 1250, "--authorization-id", "auth-cli-replay")

    first = succeeded(authzctl(server.target, tenant.processor, *retry))
    again = succeeded(authzctl(server.target, tenant.processor, *retry))

    assert "(replayed)" not in first
    assert again.startswith("APPROVE  APPROVED  code=00  authorization_id=auth-cli-replay")
    assert again.rstrip().endswith("(replayed)")


def test_a_frozen_card_is_declined_with_code_62(server: ThreadedServer, api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant)

    frozen = succeeded(authzctl(server.target, tenant.operator, "freeze", card.card_id, "--reason", "lost"))
    declined = succeeded(authzctl(server.target, tenant.processor, *purchase(card.card_id)))

    assert frozen.startswith(f"card_id={card.card_id}  state=FROZEN  currency=USD  policy_version=2")
    assert declined.startswith("DECLINE  CARD_FROZEN  code=62  authorization_id=auth-")


def test_the_limit_that_failed_is_shown(server: ThreadedServer, api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant, t.SpendControls(spending_limits=[t.SpendLimit(interval=t.DAILY, amount_minor=1000)]))

    declined = succeeded(authzctl(server.target, tenant.processor, *purchase(card.card_id, 5000)))

    assert declined.splitlines()[0].startswith("DECLINE  SPEND_LIMIT_EXCEEDED  code=61")
    assert declined.splitlines()[1] == "exceeded_limit: DAILY amount<=1000"


def test_controls_from_a_file_replace_the_cards_controls(
    server: ThreadedServer, api: Api, tenant: TenantKeys, tmp_path: Path
) -> None:
    card = api.issue_card(tenant)
    controls_file = tmp_path / "controls.json"
    controls_file.write_text(json.dumps({"allowed_countries": ["CA", "US"], "review_threshold_minor": "150000"}))

    updated = succeeded(
        authzctl(server.target, tenant.admin, "update-controls", card.card_id, "--controls", f"@{controls_file}")
    )

    assert "policy_version=2" in updated.splitlines()[0]
    assert updated.splitlines()[2] == "controls: allowed_countries=CA,US; review>=150000"


def test_a_bad_currency_is_invalid_argument_and_exit_1(server: ThreadedServer, api: Api, tenant: TenantKeys) -> None:
    card = api.issue_card(tenant)

    result = authzctl(
        server.target, tenant.processor,
        "authorize", card.card_id, "1250", "--currency", "usd", "--mcc", "5812", "--country", "US",
    )  # fmt: skip

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: INVALID_ARGUMENT: ")
    assert "currency" in result.stderr


def test_a_wrong_token_is_unauthenticated_and_never_echoed(server: ThreadedServer) -> None:
    wrong = "key_0000000000000000.not-a-real-secret"

    result = authzctl(server.target, None, "get-card", "card_x", env={**os.environ, "AUTHZ_TOKEN": wrong})

    assert result.returncode == 1
    assert result.stderr.startswith("error: UNAUTHENTICATED: ")
    assert wrong not in result.stdout + result.stderr


def test_usage_errors_exit_2_before_any_call(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTHZ_TOKEN", raising=False)
    with pytest.raises(SystemExit) as no_token:
        main(["--target", "127.0.0.1:1", "get-card", "card_x"])
    assert no_token.value.code == 2
    assert "pass --token or set AUTHZ_TOKEN" in capsys.readouterr().err

    with pytest.raises(SystemExit) as bad_controls:
        main(["--token", "x" * 20, "update-controls", "card_x", "--controls", '{"no_such_field": 1}'])
    assert bad_controls.value.code == 2
    assert "not SpendControls in proto JSON" in capsys.readouterr().err

"""A randomized mix of authorize, advice, incremental, reverse, clear (partial, final, over and under),
refund, force post and expiry on one card, every operation sometimes repeated with the same
id, checked after each step against a small reference model of the hold and window counters,
and at the end against the ledger invariants of DESIGN §5."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from authz_server.lifecycle import sweep_expired_holds
from tests.support import ledger_checks
from tests.support.api import Api, TenantKeys, bearer, new_id
from tests.support.stack import EPOCH_MS, Ledger, ThreadedServer
from zentra.cards.v1 import authorization_pb2, clearing_pb2, clearing_pb2_grpc
from zentra.cards.v1 import types_pb2 as t

DAY_MS = 24 * 3600 * 1000


@dataclass
class Hold:
    """The reference model of one approval: what it still holds, what its windows count."""

    amount: int
    held: int
    counted: int
    cleared: int = 0
    finally_cleared: bool = False


class Lifecycle(RuleBasedStateMachine):
    """One card per run; the lifetime window counter is compared with the model after each step."""

    server: ThreadedServer
    api: Api
    ledger: Ledger

    @initialize()
    def start(self) -> None:
        self.tenant: TenantKeys = self.api.new_tenant()
        limits = [t.SpendLimit(interval=t.LIFETIME, amount_minor=10**12)]
        self.card = self.api.issue_card(self.tenant, t.SpendControls(spending_limits=limits))
        self.holds: dict[str, Hold] = {}
        self.done: list[tuple[str, object]] = []  # (kind, request) of every call made, for repeats
        self.clearing = clearing_pb2_grpc.ClearingServiceStub(self.api.channel)
        self.now_ms = EPOCH_MS
        self.server.clock.set_ms(self.now_ms)

    def teardown(self) -> None:
        self.server.clock.set_ms(EPOCH_MS)

    # --- operations --------------------------------------------------------------------------

    @rule(amount=st.integers(1, 5000), advice=st.booleans())
    def authorize(self, amount: int, advice: bool) -> None:
        request = self.api.authorize_request(self.card.card_id, amount)
        request.advice = advice
        response = self.api.authz.Authorize(request, metadata=bearer(self.tenant.processor))
        assert response.decision == t.APPROVE, response
        self.holds[request.authorization_id] = Hold(amount, amount, amount)
        self.done.append(("authorize", request))

    @precondition(lambda self: any(h.held for h in self.holds.values()))
    @rule(data=st.data(), amount=st.integers(1, 2000))
    def increment(self, data: st.DataObject, amount: int) -> None:
        authorization_id = data.draw(st.sampled_from([a for a, h in self.holds.items() if h.held]))
        request = self.api.authorize_request(self.card.card_id, amount)
        request.incremental_of = authorization_id
        response = self.api.authz.Authorize(request, metadata=bearer(self.tenant.processor))
        assert response.decision == t.APPROVE, response
        hold = self.holds[authorization_id]
        hold.amount += amount
        hold.held += amount
        hold.counted += amount
        self.done.append(("authorize", request))

    @precondition(lambda self: any(h.held for h in self.holds.values()))
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        authorization_id = data.draw(st.sampled_from([a for a, h in self.holds.items() if h.held]))
        hold = self.holds[authorization_id]
        amount = data.draw(st.sampled_from([0, max(1, hold.held // 2), hold.held + 1]))
        request = authorization_pb2.ReverseRequest(
            reversal_id=new_id("rev"), authorization_id=authorization_id, amount_minor=amount
        )
        try:
            response = self.api.authz.Reverse(request, metadata=bearer(self.tenant.processor))
        except grpc.RpcError as error:
            assert amount > hold.held and error.code() == grpc.StatusCode.FAILED_PRECONDITION
            return
        released = amount or hold.held
        assert (response.released_minor, response.remaining_hold_minor) == (released, hold.held - released)
        hold.held -= released
        hold.counted = max(0, hold.counted - released)
        self.done.append(("reverse", request))

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), final=st.booleans(), factor=st.sampled_from([50, 100, 115, 200]))
    def clear(self, data: st.DataObject, final: bool, factor: int) -> None:
        authorization_id = data.draw(st.sampled_from(list(self.holds)))
        hold = self.holds[authorization_id]
        amount = max(1, hold.amount * factor // 100)
        record = self._record(amount, authorization_id, final)
        result = self.clearing.PostClearing(record, metadata=bearer(self.tenant.processor))
        counted_before = hold.counted
        if hold.held == 0:
            assert result.outcome == clearing_pb2.LATE_CAPTURE
            hold.cleared += amount
            hold.counted = hold.cleared
        else:
            from_hold = min(amount, hold.held)
            assert (result.from_hold_minor, result.from_balance_minor) == (from_hold, amount - from_hold)
            hold.held -= from_hold
            hold.cleared += amount
            if final:
                assert result.released_minor == hold.held
                hold.held = 0
                hold.counted = hold.cleared
        assert hold.counted >= 0 and counted_before >= 0
        self.done.append(("clear", record))

    @rule(amount=st.integers(1, 3000), refund=st.booleans())
    def unmatched(self, amount: int, refund: bool) -> None:
        kind = clearing_pb2.REFUND if refund else clearing_pb2.CAPTURE
        record = self._record(amount, "", True, kind)
        result = self.clearing.PostClearing(record, metadata=bearer(self.tenant.processor))
        assert result.outcome == (clearing_pb2.REFUNDED if refund else clearing_pb2.FORCE_POSTED)
        self.done.append(("clear", record))

    @rule()
    def expire(self) -> None:
        self.now_ms += 8 * DAY_MS
        self.server.clock.set_ms(self.now_ms)
        s = self.server.server
        self.server.call(sweep_expired_holds(s.redis, s.scripts, s.keyspace, self.now_ms))
        for hold in self.holds.values():
            hold.counted = max(0, hold.counted - hold.held)
            hold.held = 0

    @precondition(lambda self: bool(self.done))
    @rule(data=st.data())
    def repeat(self, data: st.DataObject) -> None:
        """Any earlier call again, with the same id: answered as before, nothing moves."""
        kind, request = data.draw(st.sampled_from(self.done))
        if kind == "authorize":
            assert self.api.authz.Authorize(request, metadata=bearer(self.tenant.processor)).replayed
        elif kind == "reverse":
            assert self.api.authz.Reverse(request, metadata=bearer(self.tenant.processor)).replayed
        else:
            assert self.clearing.PostClearing(request, metadata=bearer(self.tenant.processor)).replayed

    def _record(self, amount: int, authorization_id: str, final: bool, kind: int = clearing_pb2.CAPTURE):  # type: ignore[no-untyped-def]
        return clearing_pb2.ClearingRecord(
            clearing_id=new_id("clr"), authorization_id=authorization_id, card_id=self.card.card_id,
            amount_minor=amount, currency="USD", merchant=t.Merchant(mcc="5812", country="US"), kind=kind,
            is_final=final,
        )  # fmt: skip

    # --- checks ------------------------------------------------------------------------------

    @invariant()
    def lifetime_counter_follows_the_model(self) -> None:
        if not hasattr(self, "card"):
            return
        keys = self.server.server.keyspace
        usage = self.server.call(
            self.server.server.redis.hgetall(
                keys.usage(keys.shard_of(self.card.card_id), self.tenant.tenant_id, self.card.card_id)
            )
        )
        counted = sum(h.counted for h in self.holds.values())
        approvals = sum(1 for h in self.holds.values() if h.counted > 0)
        assert int(usage.get(b"L|a", 0)) == counted, f"lifetime amount {usage.get(b'L|a')} != model {counted}"
        assert int(usage.get(b"L|c", 0)) == approvals, f"lifetime count {usage.get(b'L|c')} != model {approvals}"

    def check_ledger(self) -> None:
        self.ledger.drain()
        ledger_checks.assert_balanced(self.ledger.fetch, [self.tenant.tenant_id])
        ledger_checks.assert_reserved_matches_holds(self.ledger.fetch, [self.tenant.tenant_id])
        [row] = self.ledger.fetch(
            """SELECT COALESCE(sum(CASE direction WHEN 2 THEN amount_minor ELSE -amount_minor END), 0) AS reserved
               FROM ledger_entries WHERE tenant_id = $1 AND account = 'reserved_balance'""",
            self.tenant.tenant_id,
        )
        assert row["reserved"] == sum(h.held for h in self.holds.values()), "reserved_balance = what the model holds"


def test_lifecycle_against_the_reference_model(server: ThreadedServer, api: Api, ledger: Ledger) -> None:
    class Run(Lifecycle):
        def teardown(self) -> None:
            try:
                if hasattr(self, "card"):
                    self.check_ledger()
            finally:
                super().teardown()

    Run.server, Run.api, Run.ledger = server, api, ledger
    Run.TestCase.settings = settings(
        max_examples=25, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
    )
    Run.TestCase().runTest()

"""ClearingService: clearing records matched to authorizations and posted, one at a time or
as a whole file."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from authz_server import validation
from authz_server.auth import Principal
from authz_server.errors import DomainError
from authz_server.lifecycle import Clearing
from authz_server.services.rpc import RpcContext, rpc
from zentra.cards.v1 import clearing_pb2, clearing_pb2_grpc

_SVC = "/zentra.cards.v1.ClearingService/"
# A file's summary lists at most this many rejections (the counts are always exact), each
# reason cut to REJECTION_REASON_CHARS_MAX, so the summary stays well inside the 1 MiB
# message limit (2,000 x ~400 bytes).
REJECTIONS_LISTED_MAX = 2_000
REJECTION_REASON_CHARS_MAX = 200
_COUNTER_OF_OUTCOME = {
    clearing_pb2.MATCHED: "matched",
    clearing_pb2.MISMATCHED: "mismatched",
    clearing_pb2.FORCE_POSTED: "force_posted",
    clearing_pb2.LATE_CAPTURE: "late_captures",
    clearing_pb2.REFUNDED: "refunds",
}


class ClearingService(clearing_pb2_grpc.ClearingServiceServicer):
    def __init__(self, rpc_context: RpcContext, clearing: Clearing) -> None:
        self.rpc_context = rpc_context
        self._clearing = clearing

    @rpc(_SVC + "PostClearing")
    async def PostClearing(
        self, request: clearing_pb2.ClearingRecord, context: grpc.aio.ServicerContext, principal: Principal
    ) -> clearing_pb2.ClearingResult:
        """Matches and posts one record; see the proto. Safe to retry with the same clearing_id."""
        validation.validate_clearing(request)
        return await self._clearing.post(principal.tenant_id, principal.key_id, request)

    @rpc(_SVC + "IngestClearingFile")
    async def IngestClearingFile(
        self,
        request_iterator: AsyncIterator[clearing_pb2.ClearingRecord],
        context: grpc.aio.ServicerContext,
        principal: Principal,
    ) -> clearing_pb2.ClearingSummary:
        """Posts every record of a file in order (several clearings of one authorization keep
        their order); a record that is malformed or cannot be posted is rejected with its line
        and the reason, and the rest go through. Re-ingesting a file posts nothing twice: its
        records come back as duplicates."""
        summary = clearing_pb2.ClearingSummary()
        async for record in request_iterator:
            summary.records += 1
            try:
                validation.validate_clearing(record)
                result = await self._clearing.post(principal.tenant_id, principal.key_id, record)
            except DomainError as error:
                summary.rejected += 1
                if len(summary.rejections) < REJECTIONS_LISTED_MAX:
                    reason = str(error)[:REJECTION_REASON_CHARS_MAX]
                    summary.rejections.add(line=record.line, clearing_id=record.clearing_id, reason=reason)
                continue
            if result.replayed:
                summary.duplicates += 1
                continue
            counter = _COUNTER_OF_OUTCOME[result.outcome]
            setattr(summary, counter, getattr(summary, counter) + 1)
            if result.review_id:
                summary.under_review += 1
        return summary

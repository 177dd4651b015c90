"""Events the ledger writer puts in the outbox (the `events` table), as rows ready to insert.

An event's id is the one `authz_server.events.event_id` defines, a UUIDv5 of (tenant, type,
subject, source), so that recording an event twice inserts nothing the second time. A batch
derives two or more ids per decision; `event_uuid` computes the same id as text, which
asyncpg writes without a `uuid.UUID` object in between, in about a third of the time (the
tests check that both give the same id)."""

from __future__ import annotations

import hashlib
from datetime import datetime

# The namespace is event_id's own (one definition of how event ids are derived).
from authz_server.events import _NAMESPACE

# (event_id, tenant_id, type, subject, payload as JSON text, occurred_at): the columns of
# `events` the writer fills. The payload is text because a decision's payload is shared by
# several of its events: it is serialized once.
EventRow = tuple[str, str, str, str, str, datetime]

_NAMESPACE_BYTES = _NAMESPACE.bytes


def event_uuid(tenant_id: str, event_type: str, subject: str, source: str) -> str:
    """`str(authz_server.events.event_id(tenant_id, event_type, subject, source))`: SHA-1 of
    the namespace and the name, first 16 bytes, version 5 and the RFC 4122 variant set."""
    name = "\x1f".join((tenant_id, event_type, subject, source)).encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # variant RFC 4122
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def event_row(
    tenant_id: str, event_type: str, subject: str, source: str, payload: str, occurred_at: datetime
) -> EventRow:
    """The event as a row of `events`, its id derived from (tenant, type, subject, source)."""
    return (event_uuid(tenant_id, event_type, subject, source), tenant_id, event_type, subject, payload, occurred_at)

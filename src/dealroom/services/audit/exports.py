"""A deal's audit trail as a file: JSON (one document) and CSV, streamed row by row."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from dealroom.db.models import Deal, Event
from dealroom.domain.timestamps import iso
from dealroom.services.audit.chain import Verification, canonical
from dealroom.services.feed import event_json

CSV_COLUMNS = (
    "seq", "created_at", "type", "actor_type", "actor_id", "from_state", "to_state",
    "payload", "ip", "user_agent", "prev_hash", "hash",
)  # fmt: skip


def export_json(deal: Deal, events: Iterable[Event], verification: Verification) -> Iterator[str]:
    """Stream the trail as one JSON document: the deal, the events, the verification."""
    head = {"deal_id": deal.id, "ref": deal.ref, "process": deal.process_name,
            "state": deal.state, "exported_verification": verification.to_json()}  # fmt: skip
    yield canonical(head)[:-1] + ',"events":['
    first = True
    for e in events:
        yield ("" if first else ",") + canonical(
            {**event_json(e), "ip": e.ip, "user_agent": e.user_agent}
        )
        first = False
    yield "]}\n"


def export_csv(events: Iterable[Event]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    for e in events:
        buf.seek(0)
        buf.truncate()
        writer.writerow(
            [e.seq, iso(e.created_at), e.type, e.actor_type, e.actor_id or "", e.from_state or "",
             e.to_state or "", canonical(e.payload), e.ip or "", e.user_agent or "", e.prev_hash,
             e.hash]
        )  # fmt: skip
        yield buf.getvalue()

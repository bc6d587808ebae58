"""The unit of work: one transaction, its clock reading, and what to publish after commit.

The edge (request dependency, worker loop, CLI) opens and commits it; services receive it
and only flush.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from sqlalchemy.orm import Session

from dealroom.config import Config
from dealroom.db.models import IdempotencyKey
from dealroom.outbox import Broker, OutboxItem
from dealroom.services import audit


def to_json(payload: Any) -> str:
    """Compact JSON of an answer. Answers are built from JSON types already; only one that
    is not (a Decimal, a datetime …) pays for FastAPI's encoder, which walks every value."""
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(jsonable_encoder(payload), separators=(",", ":"), ensure_ascii=False)


@dataclass
class UnitOfWork:
    session: Session
    now: datetime
    config: Config
    ip: str | None = None
    user_agent: str | None = None
    outbox: list[OutboxItem] = field(default_factory=list)
    idempotency: tuple[str, str, str, str] | None = None  # user, key, method+path, hash

    def commit(self, broker: Broker | None = None) -> None:
        """COMMIT. With a broker and something in the outbox, the transaction first numbers
        its held events (`audit.number_feed`, which takes the feed lock) and lets the broker
        announce the outbox with those positions inside it (`Broker.announce`)."""
        if broker is not None and self.outbox:
            audit.number_feed(self.session)
            broker.announce(self.session, self.outbox)
        self.session.commit()

    def remember(self, payload: Any, status_code: int = 200) -> Response:
        """Answer with `payload`; store it under the request's Idempotency-Key, if any,
        in the same transaction as the writes it answers for."""
        body = to_json(payload)
        if self.idempotency is not None:
            user_id, key, where, digest = self.idempotency
            method, _, path = where.partition(" ")
            self.session.add(
                IdempotencyKey(
                    user_id=user_id,
                    key=key,
                    method=method,
                    path=path,
                    request_hash=digest,
                    status_code=status_code,
                    response_body=body,
                    created_at=self.now,
                )
            )
        return Response(content=body, status_code=status_code, media_type="application/json")

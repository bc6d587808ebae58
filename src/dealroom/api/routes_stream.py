"""Live streams (Server-Sent Events): a deal's events, and everything for the caller.

- `GET /v1/deals/{id}/stream`: the deal's events (`event: deal-event`, the API's event
  shape); `id:` is the per-deal `seq`. Parties and operators; anyone else gets 404.
- `GET /v1/me/stream`: the events of the caller's deals (every deal for operators and
  admins) and the caller's bell items (`event: notification`); `id:` is the cursor
  `<feed_seq>.<notification id>`, the last of each sent so far. `event: unread` carries
  the unread count after notifications are marked read elsewhere (no `id:`).

`Last-Event-ID` (the header browsers send on reconnecting, or the `last_event_id` query
parameter) replays everything after it from the database, then the stream goes on live;
without it the stream starts at the present. Either way the first message after the
replay is `event: ready`, whose `id:` is the position reached: a client that reconnects
from there misses nothing. Idle streams carry a `: heartbeat` comment every 15 s. When
the bearer token expires the stream sends `event: end` (`{"reason": "token-expired"}`) and
closes; sign in again and reconnect with the last id.

No gap and no repeat across the replay/live boundary: the stream subscribes to the hub
first, then reads the past, then drops every live item at or before the position already
sent. Events reach the hub in feed order (`dealroom.realtime.hub`), and a deal's `seq` has no
holes, so a deal stream that sees a jump re-reads the missing events from the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from dealroom.clock import Clock
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.domain.errors import InvalidRequest, NotAuthenticated, Unavailable
from dealroom.edge.caller import CurrentUser, bearer
from dealroom.edge.uow import UoW
from dealroom.realtime.brokers import RealtimeBroker
from dealroom.realtime.hub import READ_BATCH, Hub
from dealroom.security import read_token, signing_key
from dealroom.services import deals, feed
from dealroom.services.accounts import is_staff
from dealroom.services.deals import trail
from dealroom.services.feed import event_json
from dealroom.services.notifications import bell
from dealroom.services.uow import UnitOfWork, session_scope

router = APIRouter(tags=["streams"])
log = logging.getLogger("dealroom.realtime")

T = TypeVar("T")

DEAL_CURSOR = re.compile(r"^\d{1,18}$")
MY_CURSOR = re.compile(r"^(\d{1,18})\.(\d{1,18})$")

LastEventIdHeader = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=40,
        description="The `id:` of the last message received: replay what came after it.",
    ),
]
LastEventIdQuery = Annotated[
    str | None,
    Query(
        max_length=40,
        description="The same as the `Last-Event-ID` header, for clients that cannot set it.",
    ),
]

_STREAM_DOC = (
    "A `text/event-stream`. Messages: `deal-event`, `notification`, `unread`, `ready` "
    "(the position reached after the replay) and `end` (the token expired); comment lines "
    "are heartbeats."
)
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": _STREAM_DOC,
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    401: {"description": "Not signed in (NEG-012)."},
    404: {"description": "No such deal, or the caller may not see it (NEG-011)."},
    422: {"description": "A `Last-Event-ID` this stream did not give out (NEG-016)."},
}


class EventStream(EventSourceResponse):
    media_type = "text/event-stream"


def frame(event: str, data: str, id_: str | None = None) -> bytes:
    head = f"id: {id_}\n" if id_ is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(fn, *args)


def _hub(request: Request) -> Hub:
    broker = request.app.state.broker
    if not isinstance(broker, RealtimeBroker):
        raise Unavailable("Live streams are not running in this process.", rule="REALTIME")
    return broker.hub


def _seconds_left(request: Request, uow: UnitOfWork) -> float:
    """How long the caller's token stays valid: the stream ends then."""
    token = bearer(request)
    if token is None:
        raise NotAuthenticated("Sign in first.", rule="AUTH")
    claims = read_token(signing_key(uow.session, uow.config.secret_key), token, now=uow.now)
    return float(claims["exp"]) - uow.now.timestamp()


def _last_event_id(header: str | None, query: str | None) -> str | None:
    value = header if header is not None else query
    return value.strip() if value and value.strip() else None


def _bad_cursor(example: str) -> InvalidRequest:
    return InvalidRequest(
        f"Last-Event-ID is not an id this stream gave out (they look like {example}); "
        "reconnect without it to start from the present.",
        field="Last-Event-ID",
    )


async def _guarded(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Once the answer has started, a failure (the database gone) can only end the stream;
    the client reconnects with its last id and misses nothing."""
    try:
        async for chunk in frames:
            yield chunk
    except Exception:
        log.warning("a live stream ended on an error; the client will resume", exc_info=True)


def _respond(hub: Hub, content: AsyncIterator[bytes]) -> EventStream:
    settings = hub.settings
    return EventStream(
        _guarded(content),
        ping=settings.heartbeat_seconds,
        sep="\n",
        send_timeout=settings.send_timeout_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat", sep="\n"),
    )


def _end() -> bytes:
    return frame(
        "end",
        json.dumps({"reason": "token-expired", "detail": "Sign in again and reconnect."}),
    )


# --- a deal's stream ----------------------------------------------------------------------


@router.get(
    "/v1/deals/{deal_id}/stream",
    response_class=EventStream,
    summary="Stream a deal's events",
    description="Server-Sent Events of the deal, `id:` = the event's `seq`. Honours "
    "`Last-Event-ID` (header or `last_event_id`): replays what came after it, then goes on "
    "live. " + _STREAM_DOC,
    responses=RESPONSES,
)
def deal_stream(
    deal_id: str,
    request: Request,
    uow: UoW,
    user: CurrentUser,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> EventStream:
    deal, _role = deals.get_deal(uow.session, deal_id, user)
    cursor = _last_event_id(last_event_id_header, last_event_id)
    if cursor is not None and (not DEAL_CURSOR.match(cursor) or int(cursor) > deal.last_seq):
        raise _bad_cursor('"12"')
    hub = _hub(request)
    stream = DealStream(
        request.app.state.db,
        hub,
        deal.id,
        after=int(cursor) if cursor is not None else None,
        seconds_left=_seconds_left(request, uow),
    )
    return _respond(hub, stream.frames())


class DealStream:
    def __init__(
        self, db: Database, hub: Hub, deal_id: str, *, after: int | None, seconds_left: float
    ) -> None:
        self.db = db
        self.hub = hub
        self.deal_id = deal_id
        self.last = after
        self.seconds_left = seconds_left

    async def frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds_left
        await _in_thread(self.hub.prime)
        sub = self.hub.subscribe(deal_id=self.deal_id)
        try:
            if self.last is None:
                self.last = await _in_thread(self._head)
            else:
                async for chunk in self._catch_up():
                    yield chunk
            yield frame(
                "ready", json.dumps({"deal_id": self.deal_id, "seq": self.last}), str(self.last)
            )
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    yield _end()
                    return
                item = await sub.get(left)
                if item is None:
                    continue
                if item.kind == "event" and item.seq <= self.last:
                    continue  # already sent by the replay
                if item.kind == "event" and item.seq == self.last + 1:
                    self.last = item.seq
                    yield frame("deal-event", item.data, str(item.seq))
                    continue
                # A jump (or a resync): the missing events are committed; read them.
                async for chunk in self._catch_up():
                    yield chunk
        finally:
            sub.close()

    async def _catch_up(self) -> AsyncIterator[bytes]:
        while True:
            rows = await _in_thread(self._read)
            for seq, data in rows:
                self.last = seq
                yield frame("deal-event", data, str(seq))
            if len(rows) < READ_BATCH:
                return

    def _head(self) -> int:
        with session_scope(self.db, write=False) as s:
            return trail.last_seq(s, self.deal_id)

    def _read(self) -> list[tuple[int, str]]:
        with session_scope(self.db, write=False) as s:
            rows = trail.events_after(s, self.deal_id, after=self.last or 0, limit=READ_BATCH)
            return [(e.seq, _json(event_json(e))) for e in rows]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- the caller's stream ------------------------------------------------------------------


@router.get(
    "/v1/me/stream",
    response_class=EventStream,
    summary="Stream everything for me",
    description="Server-Sent Events of the caller's deals (every deal for operators and "
    "admins) and of the caller's bell items, `id:` = `<feed_seq>.<notification id>`. "
    "Honours `Last-Event-ID` (header or `last_event_id`). Bell items pushed here are "
    "marked `seen_live_at`. " + _STREAM_DOC,
    responses={k: v for k, v in RESPONSES.items() if k != 404},
)
def my_stream(
    request: Request,
    uow: UoW,
    user: CurrentUser,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> EventStream:
    cursor = _last_event_id(last_event_id_header, last_event_id)
    position: tuple[int, int] | None = None
    if cursor is not None:
        match = MY_CURSOR.match(cursor)
        if match is None:
            raise _bad_cursor('"1042.17"')
        position = (int(match[1]), int(match[2]))
        if position[0] > feed.head(uow.session) or position[1] > bell.head(uow.session, user.id):
            raise _bad_cursor('"1042.17"')
    hub = _hub(request)
    stream = MyStream(
        request.app.state.db,
        hub,
        request.app.state.clock,
        user.id,
        staff=is_staff(user),
        position=position,
        seconds_left=_seconds_left(request, uow),
    )
    return _respond(hub, stream.frames())


class MyStream:
    def __init__(
        self,
        db: Database,
        hub: Hub,
        clock: Clock,
        user_id: str,
        *,
        staff: bool,
        position: tuple[int, int] | None,
        seconds_left: float,
    ) -> None:
        self.db = db
        self.hub = hub
        self.clock = clock
        self.user_id = user_id
        self.staff = staff
        self.feed, self.bell = position if position is not None else (-1, -1)
        self.seconds_left = seconds_left
        self.seen: list[int] = []

    @property
    def cursor(self) -> str:
        return f"{self.feed}.{self.bell}"

    async def frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds_left
        await _in_thread(self.hub.prime)
        sub = self.hub.subscribe(user_id=self.user_id, staff=self.staff)
        try:
            if self.feed < 0:
                self.feed, self.bell = await _in_thread(self._heads)
            else:
                async for chunk in self._replay():
                    yield chunk
            yield frame(
                "ready",
                json.dumps({"feed_seq": self.feed, "notification_id": self.bell}),
                self.cursor,
            )
            while True:
                if self.seen and not sub.pending():
                    await self._mark_seen()
                left = deadline - loop.time()
                if left <= 0:
                    yield _end()
                    return
                item = await sub.get(left)
                if item is None:
                    continue
                if item.kind == "event":
                    if item.feed_seq > self.feed:
                        self.feed = item.feed_seq
                        yield frame("deal-event", item.data, self.cursor)
                elif item.kind == "notification":
                    # With the events: the move behind a notification comes before it, even
                    # when the notification is heard of first.
                    async for chunk in self._replay():
                        yield chunk
                elif item.kind == "unread":
                    yield frame("unread", item.data)
                else:
                    async for chunk in self._replay():
                        yield chunk
        finally:
            sub.close()
            if self.seen:
                with anyio.CancelScope(shield=True):  # a closing stream still records them
                    await self._mark_seen()

    async def _replay(self) -> AsyncIterator[bytes]:
        """Events after `feed` and bell items after `bell`, oldest first."""
        while True:
            evs, notes = await _in_thread(self._read)
            # Events first: once every event is out, each notification read has had its
            # events sent, so a notification never comes before the move it tells of.
            for event in evs:
                self.feed = int(event["feed_seq"])
                yield frame("deal-event", _json(event), self.cursor)
            if len(evs) == READ_BATCH:
                continue  # more events to come; the bell is read again after them
            for note in notes:
                self.bell = note.id
                self.seen.append(note.id)
                yield frame("notification", _json(bell.notification_json(note)), self.cursor)
            if len(notes) < READ_BATCH:
                return

    def _heads(self) -> tuple[int, int]:
        with session_scope(self.db, write=False) as s:
            return feed.head(s), bell.head(s, self.user_id)

    def _read(self) -> tuple[list[dict[str, Any]], list[m.Notification]]:
        with session_scope(self.db, write=False) as s:
            # The bell first: the events of every notification read are then read too.
            notes = bell.after(s, self.user_id, self.bell, limit=READ_BATCH)
            party_id = None if self.staff else self.user_id
            rows = feed.events_after(s, self.feed, limit=READ_BATCH, party_id=party_id)
            evs = [event_json(e) for e in rows]
            s.expunge_all()
            return evs, notes

    async def _mark_seen(self) -> None:
        ids, self.seen = self.seen, []
        await _in_thread(self._write_seen, ids)

    def _write_seen(self, ids: list[int]) -> None:
        with session_scope(self.db) as s:
            bell.mark_seen_live(s, ids, self.clock.now())

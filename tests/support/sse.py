"""Reading Server-Sent Events from a live server with httpx, every read bounded: a read
that finds no complete message within its timeout fails the test instead of hanging it
(the server's heartbeats keep the lines coming)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Message:
    event: str
    id: str | None
    data: Any


class Stream:
    """The messages of one open SSE response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()
        self.heartbeats = 0
        self.last_id: str | None = None

    def next(self, timeout: float = 5.0) -> Message:
        deadline = time.monotonic() + timeout
        fields: dict[str, str] = {}
        for line in self.lines:
            if line.startswith(":"):
                self.heartbeats += 1
            elif line == "":
                if fields:
                    data = fields.get("data")
                    msg = Message(fields.get("event", "message"), fields.get("id"),
                                  json.loads(data) if data else None)  # fmt: skip
                    if msg.id is not None:
                        self.last_id = msg.id
                    return msg
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                fields[name] = fields[name] + "\n" + value if name in fields else value
            if time.monotonic() > deadline:
                raise TimeoutError(f"no complete message within {timeout} s")
        raise EOFError("the stream closed")

    def until(self, done: Callable[[Message], bool], timeout: float = 10.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        seen: list[Message] = []
        while True:
            msg = self.next(max(deadline - time.monotonic(), 0.01))
            seen.append(msg)
            if done(msg):
                return seen

    def quiet(self, seconds: float) -> list[Message]:
        """Every message within `seconds` (heartbeats keep the reads short)."""
        got: list[Message] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.append(self.next(deadline - time.monotonic()))
            except TimeoutError:
                break
        return got


@contextmanager
def open_stream(
    http: httpx.Client, url: str, token: str, *, last_event_id: str | None = None
) -> Iterator[Stream]:
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    with http.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        yield Stream(r)


def deal_events(msgs: list[Message]) -> list[Message]:
    return [x for x in msgs if x.event == "deal-event"]

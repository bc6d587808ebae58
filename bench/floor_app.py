"""The least a Python HTTP server does per transition here: the floor of bench/api.py.

A bare ASGI application (no framework) under uvicorn that answers the benchmark's four
requests by running, for each, the statements of bench/api_pgbench.sql for that
transition through psycopg (async, prepared at first use) and answering `{"id",
"version"}`. No token, no validation, no engine, no hash chain, no rendering: whatever a
real API does besides comes on top of this. `fastapi_app` serves the same behind FastAPI.

- FLOOR_READS=1 (the default) runs the script's `--reads` lines too, the reads the API
  makes besides its writes; 0 runs exactly what pgbench runs.
- FLOOR_PIPELINE=1 sends a transaction's statements in psycopg's pipeline mode: one
  network round trip until a later statement needs an earlier one's answer (the deal row,
  a RETURNING … \\gset). pgbench sends them one by one (its \\gset is refused in pipelines).

bench/api.py --floor starts it: `uvicorn floor_app:app` with bench/ on PYTHONPATH, the
database in FLOOR_DSN, the script's variables (pgbench's -D) as JSON in FLOOR_VARS, and
FLOOR_POOL connections per process (default 4).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel

SCRIPT = Path(__file__).with_name("api_pgbench.sql")
#: The transactions of the script, in its order, by the transition each one writes.
TRANSITIONS = ("make-offer", "accept", "request-close", "confirm-close")
#: pgbench's `:name` variables, not PostgreSQL's `::type` casts.
_VARIABLE = re.compile(r"(?<![:\w]):([a-z_]+)")
_SECTION = re.compile(r"^-- \d\. ")
#: The deal's locking read: its row gives the buyer and the version the next steps need.
_DEAL_ROW = "SELECT * FROM deals WHERE id ="


@dataclass(frozen=True)
class Statement:
    sql: str  # psycopg placeholders: %(name)s
    gset: bool  # pgbench `\gset`: its answer's columns become variables
    deal_row: bool


def statements(script: str, *, with_reads: bool = True) -> list[list[Statement]]:
    """The script's transactions, each a list of statements (`--reads` ones included)."""
    sections: list[list[Statement]] = []
    lines: list[str] = []
    for line in script.splitlines():
        if _SECTION.match(line):
            sections.append([])
            continue
        if with_reads and line.startswith("--reads "):
            line = line.removeprefix("--reads ")
        if not line.strip() or line.startswith("--"):
            continue
        lines.append(line)
        end = line.rstrip()
        if end.endswith(";") or end.endswith("\\gset"):
            text = "\n".join(lines).rstrip()
            gset = text.endswith("\\gset")
            text = text.removesuffix("\\gset").rstrip().removesuffix(";")
            sql = _VARIABLE.sub(lambda v: f"%({v.group(1)})s", text.replace("%", "%%"))
            sections[-1].append(Statement(sql, gset, text.startswith(_DEAL_ROW)))
            lines = []
    if len(sections) != len(TRANSITIONS):
        raise ValueError(f"{SCRIPT.name}: {len(sections)} transactions, not {len(TRANSITIONS)}")
    return sections


def _keep(cur: psycopg.AsyncCursor[Any], row: tuple[Any, ...] | None, st: Statement,
          env: dict[str, Any]) -> None:  # fmt: skip
    if row is None or cur.description is None:
        return
    values = dict(zip((c.name for c in cur.description), row, strict=True))
    if st.deal_row:
        env["buyer_id"], env["version"] = values["buyer_id"], values["version"]
    else:
        env.update(values)


async def run_each(conn: psycopg.AsyncConnection[Any], steps: list[Statement],
                   env: dict[str, Any]) -> None:  # fmt: skip
    """Statement by statement, each answer awaited, as pgbench runs them."""
    for st in steps:
        cur = await conn.execute(st.sql, env)
        if st.gset or st.deal_row:
            _keep(cur, await cur.fetchone(), st, env)
        elif cur.description is not None:
            await cur.fetchall()


async def run_pipelined(conn: psycopg.AsyncConnection[Any], steps: list[Statement],
                        env: dict[str, Any]) -> None:  # fmt: skip
    """In pipeline mode: waits only for answers that later statements use."""
    async with conn.pipeline() as pipeline:
        for st in steps:
            cur = await conn.execute(st.sql, env)
            if st.gset or st.deal_row:
                await pipeline.sync()
                _keep(cur, await cur.fetchone(), st, env)


class Connections:
    """A few autocommit connections (the script says BEGIN and COMMIT itself)."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn, self.size = dsn, size
        self._free: asyncio.Queue[psycopg.AsyncConnection[Any]] | None = None

    async def take(self) -> psycopg.AsyncConnection[Any]:
        if self._free is None:
            self._free = asyncio.Queue()
            for _ in range(self.size):
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, prepare_threshold=0
                )
                self._free.put_nowait(conn)
        return await self._free.get()

    def give(self, conn: psycopg.AsyncConnection[Any]) -> None:
        assert self._free is not None
        self._free.put_nowait(conn)


STEPS = statements(SCRIPT.read_text(), with_reads=os.environ.get("FLOOR_READS", "1") == "1")
VARIABLES: dict[str, Any] = json.loads(os.environ.get("FLOOR_VARS", "{}"))
RUN: Callable[..., Awaitable[None]] = (
    run_pipelined if os.environ.get("FLOOR_PIPELINE") == "1" else run_each
)
CONNECTIONS = Connections(os.environ.get("FLOOR_DSN", ""), int(os.environ.get("FLOOR_POOL", "4")))


async def move(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    env = dict(VARIABLES)
    if path == "/v1/deals":
        env["client_id"] = int(body["listing_id"].rsplit("-", 1)[1])
        step, status = 0, 201
    else:
        env["deal_id"] = path.split("/")[3]
        step, status = TRANSITIONS.index(body["name"]), 200
    conn = await CONNECTIONS.take()
    try:
        await RUN(conn, STEPS[step], env)
    except BaseException:
        await conn.rollback()  # a failed transaction must not stay open on the connection
        raise
    finally:
        CONNECTIONS.give(conn)
    version = 1 if step == 0 else int(env["version"]) + 1
    return status, {"id": env["deal_id"], "version": version}


async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
              send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:  # fmt: skip
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/healthz":
        status, answer = 200, {"status": "ok"}
    else:
        try:
            status, answer = await move(scope["path"], json.loads(body))
        except Exception as exc:  # the load generator counts it as an error
            status, answer = 500, {"error": f"{type(exc).__name__}: {exc}"}
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


# --- the same, behind FastAPI: routing, a validated body, a Response ----------------------


class Opening(BaseModel):
    listing_id: str
    transition: str
    terms: dict[str, Any] | None = None


class Transition(BaseModel):
    name: str
    expected_version: int
    data: dict[str, Any] | None = None


def _answer(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def fastapi_app() -> FastAPI:
    """`uvicorn --factory floor_app:fastapi_app`: what FastAPI itself costs on top."""
    api = FastAPI()

    @api.get("/healthz")
    async def healthz() -> Response:
        return _answer(200, {"status": "ok"})

    @api.post("/v1/deals", status_code=201)
    async def open_deal(body: Opening) -> Response:
        return _answer(*await move("/v1/deals", body.model_dump()))

    @api.post("/v1/deals/{deal_id}/transitions")
    async def fire(deal_id: str, body: Transition) -> Response:
        return _answer(*await move(f"/v1/deals/{deal_id}/transitions", body.model_dump()))

    return api

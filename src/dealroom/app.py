"""The ASGI application: API routes, web pages, error handling, metrics."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from dealroom import __version__
from dealroom.clock import Clock, SystemClock
from dealroom.config import Config, get_config
from dealroom.db.session import Database, make_engine
from dealroom.edge import problems
from dealroom.edge.uow import WriteGate
from dealroom.realtime.brokers import make_broker
from dealroom.realtime.hub import settings_from_env
from dealroom.services.outbox import Broker
from dealroom.worker import run_forever

DESCRIPTION = """
A negotiation engine and deal room for B2B marketplaces. Buyers and sellers negotiate a
listing or a request for quote — offers, counter-offers, immutable quote versions,
messages, acceptance, a two-sided close, then order, escrow and shipment. Every move is a
timestamped, hash-chained event.

Errors are RFC 9457 `application/problem+json` with a stable `code` (NEG-001 … NEG-016).
Writes accept `Idempotency-Key`; deal transitions carry `expected_version`.
"""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the realtime listener (PostgreSQL) or tail poller (SQLite) and, in embedded
    mode, the worker loop; stop them after."""
    broker: Broker = app.state.broker
    await anyio.to_thread.run_sync(broker.start)
    stop = threading.Event()
    worker: threading.Thread | None = None
    if app.state.config.run_worker:
        worker = threading.Thread(
            target=run_forever,
            args=(app.state.db, app.state.config, app.state.clock),
            kwargs={"stop": stop, "broker": broker},
            name="dealroom-worker",
            daemon=True,
        )
        worker.start()
    try:
        yield
    finally:
        stop.set()
        if worker is not None:
            await anyio.to_thread.run_sync(worker.join, 10)
        await anyio.to_thread.run_sync(broker.stop)


def create_app(
    config: Config | None = None,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    config = config or get_config()
    app = FastAPI(
        title="dealroom",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.config = config
    app.state.db = database or Database(make_engine(config.database_url, echo=config.echo_sql))
    app.state.clock = clock or SystemClock()
    app.state.write_gate = WriteGate(config.write_concurrency)
    #: In-process fan-out on SQLite; LISTEN/NOTIFY across API processes on PostgreSQL.
    app.state.broker = make_broker(app.state.db, settings_from_env())
    problems.install(app)

    from dealroom.api import routes
    from dealroom.api.routes_ops import install_metrics

    routes.include_all(app)
    install_metrics(app)
    from dealroom import web

    web.install(app)
    return app

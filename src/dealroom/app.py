"""The ASGI application: API routes, web pages, error handling, metrics."""

from __future__ import annotations

from fastapi import FastAPI

from dealroom import __version__
from dealroom.api import problems
from dealroom.clock import Clock, SystemClock
from dealroom.config import Config, get_config
from dealroom.db.session import Database, make_engine
from dealroom.outbox import Broker

DESCRIPTION = """
A negotiation engine and deal room for B2B marketplaces. Buyers and sellers negotiate a
listing or a request for quote — offers, counter-offers, immutable quote versions,
messages, acceptance, a two-sided close, then order, escrow and shipment. Every move is a
timestamped, hash-chained event.

Errors are RFC 9457 `application/problem+json` with a stable `code` (NEG-001 … NEG-016).
Writes accept `Idempotency-Key`; deal transitions carry `expected_version`.
"""


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
    )
    app.state.config = config
    app.state.db = database or Database(make_engine(config.database_url, echo=config.echo_sql))
    app.state.clock = clock or SystemClock()
    app.state.broker = Broker()
    problems.install(app)

    from dealroom.api import routes
    from dealroom.api.routes_ops import install_metrics

    routes.include_all(app)
    install_metrics(app)
    return app

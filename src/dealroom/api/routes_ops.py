"""Operations: liveness (`/healthz`) and Prometheus metrics (`/metrics`).

`install_metrics(app)` adds the middleware that counts requests and times them by route
template (`/v1/listings/{listing_id}`, never the raw path, so label values stay few), and
subscribes to the broker to count transitions as they are committed. Deals by state are
read from the database when Prometheus scrapes, at most once every few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dealroom.api.schemas import HealthRead
from dealroom.db.session import Database
from dealroom.domain.errors import Unavailable
from dealroom.services import deals, feed
from dealroom.services.outbox import OutboxItem
from dealroom.services.uow import session_scope

log = logging.getLogger("dealroom.metrics")

router = APIRouter(tags=["operations"])

#: Seconds a scrape-time database reading is reused, so frequent scrapes stay cheap.
SCRAPE_CACHE_SECONDS = 5.0
UNMATCHED = "<unmatched>"


@router.get(
    "/healthz",
    response_model=HealthRead,
    responses={503: {"description": "The database is unreachable (NEG-010)."}},
)
def healthz(request: Request) -> HealthRead:
    """Liveness: the process answers and the database takes a query."""
    db: Database = request.app.state.db
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("health check: database unavailable: %s", exc)
        raise Unavailable(
            "The database is unavailable; retry shortly.", rule="HEALTH", retry_after=2
        ) from None
    return HealthRead(status="ok", database="ok")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text."}},
)
def metrics(request: Request) -> Response:
    """Prometheus exposition: requests and latency by route and status, deals by process
    and state, transitions fired, the feed position."""
    registry = metrics_of(request.app).registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


# --- the metrics themselves ------------------------------------------------------------


@dataclass
class Metrics:
    """One registry per app, so several apps (tests) never share counters."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    transitions: Counter
    middleware: bool = False
    subscribed: bool = False


class DatabaseCollector(Collector):
    """Deals by process and state, and the global feed position, read at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._cached: tuple[float, list[tuple[str, str, int]], int] | None = None

    def _read(self) -> tuple[list[tuple[str, str, int]], int]:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < SCRAPE_CACHE_SECONDS:
                return self._cached[1], self._cached[2]
            db: Database = self.app.state.db
            with session_scope(db, write=False) as s:
                by_state, head = deals.count_by_state(s), feed.head(s)
            self._cached = (now, by_state, head)
            return by_state, head

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "dealroom_deals", "Deals by process and current state.", labels=["process", "state"]
            ),
            GaugeMetricFamily(
                "dealroom_feed_position", "The newest position in the global event feed."
            ),
        )

    def describe(self) -> Iterator[Metric]:
        # Registering must not read the database (and cache an empty reading).
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        try:
            counts, head = self._read()
        except SQLAlchemyError as exc:
            log.warning("metrics: database unavailable: %s", exc)
            return
        by_state, position = self._families()
        for process, state, n in counts:
            by_state.add_metric([process, state], n)
        position.add_metric([], head)
        yield by_state
        yield position


def metrics_of(app: FastAPI) -> Metrics:
    """The app's metrics, created on first use."""
    existing: Metrics | None = getattr(app.state, "metrics", None)
    if existing is not None:
        return existing
    registry = CollectorRegistry()
    made = Metrics(
        registry=registry,
        requests=Counter(
            "dealroom_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        ),
        latency=Histogram(
            "dealroom_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        ),
        transitions=Counter(
            "dealroom_transitions",
            "Transitions fired (committed), by transition name and actor type.",
            ["transition", "actor_type"],
            registry=registry,
        ),
    )
    registry.register(DatabaseCollector(app))
    app.state.metrics = made
    return made


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)


def install_metrics(app: FastAPI) -> None:
    """Add the request middleware and the transition counter; safe to call twice."""
    metrics = metrics_of(app)
    if not metrics.middleware:
        app.add_middleware(MetricsMiddleware, metrics=metrics)
        metrics.middleware = True
    broker: Any = getattr(app.state, "broker", None)
    if broker is not None and not metrics.subscribed:

        def count(item: OutboxItem) -> None:
            if item.kind != "event":
                return
            name = item.payload.get("payload", {}).get("transition")
            if isinstance(name, str):
                metrics.transitions.labels(name, str(item.payload.get("actor_type"))).inc()

        broker.subscribe(count)
        metrics.subscribed = True


__all__ = ["Metrics", "MetricsMiddleware", "install_metrics", "metrics_of", "router"]

"""Every router of the API, in one list."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

#: Modules under dealroom.api that expose a `router`, in the order they appear in the docs.
ROUTER_MODULES = (
    "routes_auth",
    "routes_users",
    "routes_listings",
    "routes_deals",
    "routes_feed",
    "routes_stream",
    "routes_notifications",
    "routes_preferences",
    "routes_webhooks",
    "routes_processes",
    "routes_ops",
)


def include_all(app: FastAPI) -> None:
    for name in ROUTER_MODULES:
        try:
            module = importlib.import_module(f"dealroom.api.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"dealroom.api.{name}":
                raise
            continue  # a feature not written yet
        app.include_router(module.router)

"""Every router of the API, in one list."""

from __future__ import annotations

from fastapi import FastAPI


def include_all(app: FastAPI) -> None:
    """Routers are added here as features land."""

"""Which process a deal runs: a built-in one, or one imported into the database."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dealroom import processes as builtins
from dealroom.db.models import StoredProcess
from dealroom.domain.errors import NotFound
from dealroom.domain.loader import load_text
from dealroom.domain.model import Process

_cache: dict[tuple[str, int], Process] = {}
_lock = threading.Lock()


def get_process(session: Session, name: str, version: int | None = None) -> Process:
    """The named process (latest version unless one is asked for); NEG-011 if unknown."""
    if name in builtins.BUILTIN and version in (None, builtins.builtin(name).version):
        return builtins.builtin(name)
    if version is None:
        version = session.execute(
            select(func.max(StoredProcess.version)).where(StoredProcess.name == name)
        ).scalar_one_or_none()
        if version is None:
            raise NotFound(f"There is no process named '{name}'.", rule="PROCESS")
    key = (name, version)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    row = session.get(StoredProcess, key)
    if row is None:
        raise NotFound(f"Process '{name}' has no version {version}.", rule="PROCESS")
    # The stored version is the one that counts: a deal records it and reloads by it.
    process = replace(
        load_text(row.definition, source=f"database:{name}@{version}"), version=version
    )
    with _lock:
        _cache[key] = process
    return process


def list_processes(session: Session) -> list[Process]:
    out = {p: builtins.builtin(p) for p in builtins.BUILTIN}
    rows = session.execute(
        select(StoredProcess.name, func.max(StoredProcess.version)).group_by(StoredProcess.name)
    )
    for name, version in rows:
        out[name] = get_process(session, name, version)
    return list(out.values())


def store_process(
    session: Session, definition: str, *, source_format: str, now: datetime
) -> Process:
    """Store a checked process definition (dealroom TOML) as the next version of its name."""
    process = load_text(definition, source="import")
    if process.name in builtins.BUILTIN:
        from dealroom.domain.errors import Duplicate

        raise Duplicate(f"'{process.name}' is a built-in process; import under another name.")
    latest = session.execute(
        select(func.max(StoredProcess.version)).where(StoredProcess.name == process.name)
    ).scalar_one_or_none()
    version = (latest or 0) + 1
    session.add(StoredProcess(name=process.name, version=version, source_format=source_format,
                              definition=definition, created_at=now))  # fmt: skip
    session.flush()
    stored = replace(process, version=version, source=f"database:{process.name}@{version}")
    with _lock:
        # Replace whatever a rolled-back import (or an emptied test database) left here.
        _cache[(process.name, version)] = stored
    return stored

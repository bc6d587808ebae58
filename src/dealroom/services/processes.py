"""Which process a deal runs: a built-in one, or one imported into the database; and the one
importer (dealroom TOML or a Sharetribe process.edn) that the API and `dealroom process
import` both use.

Each import of a name stores its next version; deals keep the version they started with.
A built-in name is looked up first, so it can never be shadowed by an import.
"""

from __future__ import annotations

import json
import re
import threading
import tomllib
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dealroom import processes as builtins
from dealroom.db.models import StoredProcess
from dealroom.db.session import Database
from dealroom.domain.errors import NotFound, ProcessError, ProcessProblem
from dealroom.domain.loader import from_mapping, load_text
from dealroom.domain.model import Process
from dealroom.services.uow import session_scope

#: The formats a process definition arrives in: dealroom's own TOML, or Sharetribe's EDN.
SourceFormat = Literal["toml", "edn"]

_cache: dict[tuple[str, int], Process] = {}
_lock = threading.Lock()


class UnknownProcessError(LookupError):
    """No built-in or imported process has this name (or this version)."""

    def __init__(self, name: str, known: list[str], *, detail: str | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.known = known
        self.detail = detail

    def __str__(self) -> str:
        if self.detail:
            return self.detail
        known = ", ".join(self.known) or "none"
        return f"There is no process named '{self.name}'. Known processes: {known}."


# --- the processes deals run ----------------------------------------------------------------


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


def builtin_process(name: str, version: int | None = None) -> Process:
    """A built-in process, checked; `version` other than its own is UnknownProcessError."""
    try:
        process = builtins.builtin(name)
    except (FileNotFoundError, OSError) as exc:
        where = f"dealroom/processes/{name}.toml"
        raise ProcessError(where, [ProcessProblem("file", "missing from the package")]) from exc
    if version in (None, process.version):
        return process
    detail = f"The built-in process '{name}' has only version {process.version}."
    raise UnknownProcessError(name, list(builtins.BUILTIN), detail=detail)


def imported_names(session: Session) -> list[str]:
    """The names imported into the database, in order."""
    rows = session.execute(select(StoredProcess.name).distinct().order_by(StoredProcess.name))
    return [n for n in rows.scalars() if n not in builtins.BUILTIN]


def find_process(session: Session | None, name: str, version: int | None = None) -> Process:
    """A process by name: the built-in one first, then the one imported into the database
    (its latest version, or `version`). `session` is None when there is no database yet:
    then only the built-ins exist. UnknownProcessError names the processes there are."""
    if name in builtins.BUILTIN:
        return builtin_process(name, version)
    if session is None:
        raise UnknownProcessError(name, list(builtins.BUILTIN))
    try:
        return get_process(session, name, version)
    except NotFound as exc:
        known = [*builtins.BUILTIN, *imported_names(session)]
        why = None if version is None else exc.detail
        raise UnknownProcessError(name, known, detail=why) from None


def catalog(session: Session | None) -> list[tuple[str, Process | ProcessError]]:
    """Every built-in process, then every imported one (latest version), by name; a stored
    definition that no longer loads is listed with its error. `session` as for
    `find_process`."""
    out: list[tuple[str, Process | ProcessError]] = []
    for name in builtins.BUILTIN:
        try:
            out.append((name, builtin_process(name)))
        except ProcessError as exc:
            out.append((name, exc))
    if session is None:
        return out
    try:
        out += [(p.name, p) for p in list_processes(session) if p.name not in builtins.BUILTIN]
    except ProcessError:  # one of them no longer loads: go one by one
        for name in imported_names(session):
            try:
                out.append((name, get_process(session, name)))
            except ProcessError as exc:
                out.append((name, exc))
    return out


# --- process files ----------------------------------------------------------------------------


def format_of(path: Path) -> SourceFormat:
    """A process file's format, by its suffix."""
    return "edn" if path.suffix.lower() == ".edn" else "toml"


def load_definition(
    text: str, *, source_format: SourceFormat, source: str, name: str | None = None
) -> Process:
    """Load and check a definition as it was written, every problem named against `source`.
    With `name`, the process is renamed (an import under a new name)."""
    if source_format == "edn":
        from dealroom.processes.sharetribe import import_edn

        try:
            return import_edn(text, name=name, source=source)
        except ProcessError:
            raise
        except ValueError as exc:  # anything the converter did not put into words
            raise ProcessError(source, [ProcessProblem("edn", str(exc))]) from exc
    if name is None:
        return load_text(text, source=source)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProcessError(source, [ProcessProblem("syntax", str(exc))]) from exc
    if isinstance(raw.get("process"), dict):
        raw["process"]["name"] = name
    return from_mapping(raw, source=source, text=text)


def load_process_file(path: Path, *, name: str | None = None) -> Process:
    """Load a `.toml` process in dealroom's format or a Sharetribe `.edn`, checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProcessError(str(path), [ProcessProblem("file", exc.strerror or str(exc))]) from exc
    return load_definition(text, source_format=format_of(path), source=str(path), name=name)


# --- importing ------------------------------------------------------------------------------


def _renamed_text(text: str, name: str) -> str | None:
    """A dealroom file's own text (comments kept) with its `[process]` name set to `name`."""
    lines = text.splitlines(keepends=True)
    table = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            table = stripped
        elif table == "[process]" and re.match(r"^name\s*=", stripped):
            lines[i] = f"name = {json.dumps(name)}\n"
            break
    renamed = "".join(lines)
    try:
        ok = load_text(renamed).name == name
    except ProcessError:
        ok = False
    return renamed if ok else None


def definition_to_store(
    text: str,
    *,
    source_format: SourceFormat,
    source: str,
    name: str | None = None,
    header: str | None = None,
) -> str:
    """The dealroom TOML to store for a definition. A Sharetribe process.edn is converted
    (named `name`, else after `source`), `header` becoming its leading comment; dealroom's
    TOML is kept as written, comments included, renamed to `name` when one is given."""
    if source_format == "edn":
        from dealroom.processes.sharetribe import parse_edn, to_toml

        return to_toml(parse_edn(text, source, name=name), header=header)
    if name is None:
        return text
    renamed = _renamed_text(text, name)
    if renamed is None:
        from dealroom.processes.sharetribe import to_toml

        raw = tomllib.loads(text)
        raw["process"]["name"] = name
        renamed = to_toml(raw, header=header)
    return renamed


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


def import_process(
    session: Session,
    text: str,
    *,
    source_format: SourceFormat,
    now: datetime,
    name: str | None = None,
    source: str = "import",
    header: str | None = None,
) -> Process:
    """Store a definition, dealroom TOML or a Sharetribe process.edn, as the next version of
    its name (`definition_to_store` says how it is converted). Nothing is replaced: deals
    keep the version they started with, new deals get the latest."""
    definition = definition_to_store(
        text, source_format=source_format, source=source, name=name, header=header
    )
    return store_process(session, definition, source_format=source_format, now=now)


def import_into(
    database: Database,
    text: str,
    *,
    source_format: SourceFormat,
    now: datetime,
    name: str | None = None,
    source: str = "import",
    header: str | None = None,
) -> Process:
    """`import_process` in a transaction of its own, for callers outside a request. A
    concurrent import of the same name may take the next version first; then it is tried
    again (twice) for the version after."""
    retries = 2
    while True:
        try:
            with session_scope(database) as session:
                return import_process(session, text, source_format=source_format, now=now,
                                      name=name, source=source, header=header)  # fmt: skip
        except IntegrityError:
            if retries == 0:
                raise
            retries -= 1

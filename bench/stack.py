"""What one database statement and one thread-pool trip cost in CPU through each layer of
the stack dealroom runs on, measured on this machine.

bench/api.py says how much server CPU a transition takes; this says what that CPU buys.
Each figure is process CPU time (not wall time) per call, the median of `--repeat` runs of
`--calls` calls, on one connection to PostgreSQL, against a temporary table of 1,000 rows
(nothing is left behind):

- psycopg alone: `conn.execute(sql, params).fetchone()`, and an INSERT;
- SQLAlchemy Core with the statement built on every call (`select(...).where(...)`), and
  built once with `bindparam` (what services/deals/persist.py does for a move's statements);
- the ORM: a `select(Model)` returning one object, `Session.get` of an object not in the
  identity map, and `Session.add` + `flush` of one new object;
- one trip from an asyncio event loop to anyio's thread pool and back (FastAPI makes one
  per sync dependency and per sync endpoint).

    .venv/bin/python bench/stack.py
    .venv/bin/python bench/stack.py --url postgresql://user@host:5432/postgres
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import anyio
import psycopg
from anyio import to_thread
from rich.console import Console
from rich.table import Table
from sqlalchemy import Integer, String, bindparam, create_engine, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from dealroom.config import normalize_url


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "bench_stack"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    v: Mapped[int] = mapped_column(Integer)


CREATE = (
    "CREATE TEMP TABLE bench_stack (id serial PRIMARY KEY, name varchar(40), v integer);"
    "INSERT INTO bench_stack (name, v) SELECT 'row ' || g, g FROM generate_series(1, 1000) g"
)


def per_call_us(fn: Callable[[], object], calls: int, repeat: int) -> float:
    for _ in range(min(200, calls)):  # warm: caches, prepared statements
        fn()
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(calls):
            fn()
        runs.append((time.process_time() - start) / calls * 1e6)
    return statistics.median(runs)


def measure(url: str, calls: int, repeat: int) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(CREATE)
        out.append(("psycopg: SELECT one row by key", per_call_us(
            lambda: conn.execute("SELECT id, name, v FROM bench_stack WHERE id = %s", (5,))
            .fetchone(), calls, repeat)))  # fmt: skip
        out.append(("psycopg: INSERT one row", per_call_us(
            lambda: conn.execute("INSERT INTO bench_stack (name, v) VALUES (%s, %s)", ("a", 1)),
            calls, repeat)))  # fmt: skip
    engine = create_engine(url)
    table = Row.__table__
    try:
        with engine.connect() as c:
            c.execute(text(CREATE))
            built_once = select(table).where(table.c.id == bindparam("id"))
            insert_once = insert(table)
            out.append(("Core: SELECT, statement built per call", per_call_us(
                lambda: c.execute(select(table).where(table.c.id == 5)).first(),
                calls, repeat)))  # fmt: skip
            out.append(
                (
                    "Core: SELECT, statement built once",
                    per_call_us(lambda: c.execute(built_once, {"id": 5}).first(), calls, repeat),
                )
            )
            out.append(
                (
                    "Core: INSERT, statement built once",
                    per_call_us(
                        lambda: c.execute(insert_once, [{"name": "a", "v": 1}]), calls, repeat
                    ),
                )
            )
            with Session(bind=c) as s:
                out.append(("ORM: select(Model) one object", per_call_us(
                    lambda: s.execute(select(Row).where(Row.id == 5)).scalar_one(),
                    calls, repeat)))  # fmt: skip

                def get() -> object:
                    s.expunge_all()
                    return s.get(Row, 5)

                out.append(("ORM: Session.get (not in the identity map)",
                            per_call_us(get, calls, repeat)))  # fmt: skip

                def add() -> None:
                    s.add(Row(name="a", v=1))
                    s.flush()

                out.append(("ORM: add + flush one object", per_call_us(add, calls, repeat)))
                s.rollback()
    finally:
        engine.dispose()

    async def trips() -> float:
        def nothing() -> None:
            return None

        async def many() -> None:
            for _ in range(calls):
                await to_thread.run_sync(nothing)

        for _ in range(200):
            await to_thread.run_sync(nothing)
        runs = []
        for _ in range(repeat):
            start = time.process_time()
            await many()
            runs.append((time.process_time() - start) / calls * 1e6)
        return statistics.median(runs)

    out.append(("anyio: one trip to the thread pool and back", anyio.run(trips)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = measure(normalize_url(args.url), args.calls, args.repeat)
    console = Console(highlight=False)
    table = Table(title="CPU per call (µs, median of runs), one connection")
    table.add_column("layer")
    table.add_column("µs CPU", justify="right")
    for name, us in rows:
        table.add_row(name, f"{us:.0f}")
    console.print(table)


if __name__ == "__main__":
    main()

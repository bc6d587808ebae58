"""The list pages on PostgreSQL at size: 100,000 deals and 1,000,000 quote versions.

Loads its own database `dealroom_bench_queries` with `INSERT … SELECT generate_series`
(200 sellers with a skewed share of the deals, 2,000 buyers, 1,000 listings, states mixed,
1–19 quote versions per deal, 10 on average, a pending timer on every open deal), runs
ANALYZE, then times, for many random users, every statement that each page issues:

- **seller dashboard** (`GET /`, "what waits for me"): the deals where the user is buyer or
  seller, latest first, 100 at most; then their parties, quote versions, pending timers
  and hand-off rows (`web/queries.deal_rows`);
- **buyer "my deals"** (`GET /deals?view=buying`): the buyer's deals, 101 at most, the same
  follow-up statements, and the page's state and process filters;
- **API list** (`GET /v1/deals?role=seller`): the seller's deals by `(updated_at, id)`,
  51 at most, and `_list_items`' follow-up statements.

The statements are the application's own SQLAlchemy statements, executed on a Core
connection (no ORM objects), so the figures are the database's and the driver's. The
baseline fetches the very same rows by primary key (`WHERE id IN (…known ids…)`) in the
same run: the ratio is what finding the rows costs over fetching them.

    .venv/bin/python bench/queries.py            # full size; loading takes a minute or two
    .venv/bin/python bench/queries.py --quick    # 10,000 deals, 100,000 versions
    .venv/bin/python bench/queries.py --reuse    # keep the loaded database from a last run
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import Connection, Select, create_engine, or_, select, union_all
from sqlalchemy.dialects import postgresql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEFAULT_URL,
    emit,
    pct,
    recreate_database,
    sa_url,
    with_database,
)

from dealroom.db import models as m

DB_NAME = "dealroom_bench_queries"
SELLERS, BUYERS, LISTINGS = 200, 2000, 1000
PAGE_LIMIT = 100  # web/queries.PAGE_LIMIT
API_LIMIT = 50  # GET /v1/deals default limit
console = Console(width=150)
PG = postgresql.dialect()  # type: ignore[no-untyped-call]

# --- loading ------------------------------------------------------------------------------

LOAD_SQL = """
SELECT setseed(0.42);
INSERT INTO users (id, email, name, password_hash, roles, kyc_verified, plan, timezone,
                   locale, blocked, created_at)
SELECT md5('seller' || i)::uuid::text, 'seller' || i || '@bench.test', 'Seller ' || i, 'x',
       '["seller"]', true, 'paid', 'UTC', 'en', false, now() - interval '2 years'
FROM generate_series(1, {sellers}) i;
INSERT INTO users (id, email, name, password_hash, roles, kyc_verified, plan, timezone,
                   locale, blocked, created_at)
SELECT md5('buyer' || i)::uuid::text, 'buyer' || i || '@bench.test', 'Buyer ' || i, 'x',
       '["buyer"]', true, 'paid', 'UTC', 'en', false, now() - interval '2 years'
FROM generate_series(1, {buyers}) i;
INSERT INTO listings (id, owner_id, kind, title, currency, unit_price, quantity, sale_mode,
                      process, attributes, rules, status, created_at, updated_at)
SELECT md5('listing' || i)::uuid::text, md5('seller' || (1 + i % {sellers}))::uuid::text,
       'sell', 'Listing ' || i, 'SAR', 10 + (i % 90), 1000, 'negotiable', 'rfq', '{{}}', '{{}}',
       'active', now() - interval '1 year', now() - interval '1 year'
FROM generate_series(1, {listings}) i;
-- A deal's seller is skewed (a few sellers hold many deals: power 1.5 over 200), its
-- listing one of that seller's five, its buyer skewed over 2,000; updated in the last year.
CREATE TEMP TABLE d AS
SELECT i,
       1 + floor({sellers} * power(random(), 1.5))::int AS s,
       1 + floor({buyers} * power(random(), 1.3))::int AS b,
       floor(random() * 5)::int AS l,
       (ARRAY['quote-requested', 'quote-pending', 'counter-pending', 'accepted', 'accepted',
              'rejected', 'declined', 'expired', 'withdrawn', 'quote-pending']
       )[1 + floor(random() * 10)::int] AS state,
       now() - random() * interval '365 days' AS updated_at,
       1 + (i * 7919) % 19 AS versions
FROM generate_series(1, {deals}) i;
INSERT INTO deals (id, ref, process_name, process_version, state, version, listing_id,
                   listing_snapshot, buyer_id, seller_id, initiated_by, proposals,
                   transition_count, entered, first_transitioned, data, rules, last_seq,
                   created_at, updated_at, closed_at)
SELECT md5('deal' || i)::uuid::text, 'D-' || lpad(i::text, 8, '0'), 'rfq', 1, state,
       versions, md5('listing' || (1 + ((s - 1) + {sellers} * l) % {listings}))::uuid::text,
       '{{"currency": "SAR", "unit_price": "50.00", "quantity": 1000}}',
       md5('buyer' || b)::uuid::text, md5('seller' || s)::uuid::text, 'buyer', versions,
       versions, '{{}}', '{{}}', '{{}}', '{{}}', versions, updated_at - interval '3 days',
       updated_at,
       CASE WHEN state IN ('rejected', 'declined', 'expired', 'withdrawn') THEN updated_at END
FROM d;
INSERT INTO quote_versions (id, deal_id, number, created_by_id, created_by_role, unit_price,
                            quantity, total_price, currency, lead_time_days, change_reason,
                            price_change_pct, is_proposal, status, created_at, message)
SELECT md5('qv' || d.i || '-' || n)::uuid::text, md5('deal' || d.i)::uuid::text, n,
       CASE WHEN n % 2 = 1 THEN md5('seller' || d.s)::uuid::text
            ELSE md5('buyer' || d.b)::uuid::text END,
       CASE WHEN n % 2 = 1 THEN 'seller' ELSE 'buyer' END,
       50 - n * 0.5, 1000, (50 - n * 0.5) * 1000, 'SAR', 7,
       CASE WHEN n = 1 THEN 'initial' ELSE 'counter' END, CASE WHEN n > 1 THEN -1 END, true,
       CASE WHEN n < d.versions THEN 'superseded' ELSE 'pending' END,
       d.updated_at - (d.versions - n) * interval '1 hour',
       'Version ' || n || ' of the terms, with a short message.'
FROM d, generate_series(1, d.versions) n;
INSERT INTO timers (deal_id, kind, name, due_at, state, rule, status, created_at)
SELECT md5('deal' || i)::uuid::text, 'transition', 'expire', updated_at + interval '48 hours',
       state, 'NEG-T02', 'pending', updated_at
FROM d WHERE state IN ('quote-requested', 'quote-pending', 'counter-pending');
"""


def load(admin_url: str, deals: int) -> tuple[int, int, float]:
    """Create the schema and the rows; (deals, quote versions, seconds)."""
    recreate_database(admin_url, DB_NAME)
    engine = create_engine(sa_url(with_database(admin_url, DB_NAME)))
    m.Base.metadata.create_all(engine)
    engine.dispose()
    started = time.perf_counter()
    sql = LOAD_SQL.format(sellers=SELLERS, buyers=BUYERS, listings=LISTINGS, deals=deals)
    with psycopg.connect(with_database(admin_url, DB_NAME), autocommit=True) as conn:
        with conn.transaction():
            conn.execute(sql)  # a literal template, no user input
        conn.execute("VACUUM ANALYZE")
        n_deals = _count(conn, "deals")
        n_versions = _count(conn, "quote_versions")
    return n_deals, n_versions, time.perf_counter() - started


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


# --- the pages' statements ------------------------------------------------------------------


def follow_ups(rows: Sequence[Any], *, api: bool) -> list[Select[Any]]:
    """What `web/queries.deal_rows` (or the API's `_list_items`) issues after the list."""
    if not rows:
        return []
    ids = [r.id for r in rows]
    party_ids = {r.buyer_id for r in rows} | {r.seller_id for r in rows}
    stmts: list[Select[Any]] = [
        select(m.User).where(m.User.id.in_(party_ids)),
        select(m.QuoteVersion)
        .where(m.QuoteVersion.deal_id.in_(ids))
        .order_by(m.QuoteVersion.deal_id, m.QuoteVersion.number),
        select(m.Timer)
        .where(m.Timer.deal_id.in_(ids), m.Timer.status == "pending")
        .order_by(m.Timer.due_at),
    ]
    handed = ids if api else [r.id for r in rows if r.closed_at is not None]
    if handed:
        stmts += [
            select(m.Order).where(m.Order.deal_id.in_(handed)),
            select(m.Escrow).where(m.Escrow.deal_id.in_(handed)),
            select(m.Shipment).where(m.Shipment.deal_id.in_(handed)),
        ]
    return stmts


def dashboard_list(user_id: str) -> Select[Any]:
    """`web/routes_pages.home`: what waits for me, among my latest 100 deals."""
    return (
        select(m.Deal)
        .where(or_(m.Deal.buyer_id == user_id, m.Deal.seller_id == user_id))
        .order_by(m.Deal.updated_at.desc())
        .limit(PAGE_LIMIT)
    )


def dashboard_list_union(user_id: str) -> Select[Any]:
    """A proposed rewrite of `dashboard_list`: each side walks its own index in
    `updated_at` order and stops at 100, instead of a BitmapOr over every deal of the
    user and a sort."""
    sides = [
        select(m.Deal)
        .where(column == user_id)
        .order_by(m.Deal.updated_at.desc())
        .limit(PAGE_LIMIT)
        .subquery()
        for column in (m.Deal.buyer_id, m.Deal.seller_id)
    ]
    # UNION ALL: a user is never both parties of one deal (and json has no equality).
    both = union_all(*(select(side) for side in sides)).subquery()
    return select(both).order_by(both.c.updated_at.desc()).limit(PAGE_LIMIT)


def my_deals_list(user_id: str) -> Select[Any]:
    """`web/routes_pages.deals_page` with view=buying."""
    return (
        select(m.Deal)
        .where(m.Deal.buyer_id == user_id)
        .order_by(m.Deal.updated_at.desc())
        .limit(PAGE_LIMIT + 1)
    )


def my_deals_extras(user_id: str) -> list[Select[Any]]:
    """The deals page's view choice and its state and process filter lists."""
    mine = or_(m.Deal.buyer_id == user_id, m.Deal.seller_id == user_id)
    return [
        select(m.Deal.id).where(m.Deal.buyer_id == user_id).limit(1),
        select(m.Deal.id).where(m.Deal.seller_id == user_id).limit(1),
        select(m.Deal.state).distinct().where(mine),
        select(m.Deal.process_name).distinct().where(mine),
    ]


def api_list(user_id: str) -> Select[Any]:
    """`api/routes_deals.list_deals` with role=seller, first page."""
    return (
        select(m.Deal)
        .where(m.Deal.seller_id == user_id)
        .order_by(m.Deal.updated_at.desc(), m.Deal.id.desc())
        .limit(API_LIMIT + 1)
    )


@dataclass(frozen=True)
class Page:
    name: str
    role: str  # whose ids to sample: seller or buyer
    main: Callable[[str], Select[Any]]
    extras: Callable[[str], list[Select[Any]]] = lambda _u: []
    api: bool = False
    index: str = ""


PAGES = (
    Page("seller dashboard (GET /)", "seller", dashboard_list, index="ix_deals_seller"),
    Page(
        "buyer my deals (GET /deals?view=buying)",
        "buyer",
        my_deals_list,
        my_deals_extras,
        index="ix_deals_buyer",
    ),
    Page(
        "API list (GET /v1/deals?role=seller)",
        "seller",
        api_list,
        api=True,
        index="ix_deals_seller",
    ),
)


@dataclass
class Timing:
    page: list[float] = field(default_factory=list)  # ms, every statement of the page
    main: list[float] = field(default_factory=list)  # ms, the list statement alone
    baseline: list[float] = field(default_factory=list)  # ms, the same rows by primary key
    rows: list[int] = field(default_factory=list)


def run_page(conn: Connection, page: Page, user_id: str) -> tuple[float, float, list[Any]]:
    """(page ms, list ms, [(model, ids)] of every row read) for one user."""
    t0 = time.perf_counter()
    rows = conn.execute(page.main(user_id)).all()
    t1 = time.perf_counter()
    fetched: list[tuple[type[Any], list[Any]]] = [(m.Deal, [r.id for r in rows])]
    for stmt in follow_ups(rows, api=page.api):
        result = conn.execute(stmt).all()
        entity = stmt.column_descriptions[0]["entity"]
        fetched.append((entity, [r.id for r in result]))
    for stmt in page.extras(user_id):
        conn.execute(stmt).all()
    t2 = time.perf_counter()
    return (t2 - t0) * 1000, (t1 - t0) * 1000, fetched


def run_baseline(conn: Connection, fetched: list[tuple[type[Any], list[Any]]]) -> float:
    """The same rows, fetched by their primary keys."""
    t0 = time.perf_counter()
    for entity, ids in fetched:
        if ids:
            conn.execute(select(entity).where(entity.id.in_(ids))).all()
    return (time.perf_counter() - t0) * 1000


def explain(dsn: str, stmt: Select[Any]) -> str:
    sql = str(stmt.compile(dialect=PG, compile_kwargs={"literal_binds": True}))
    with psycopg.connect(dsn) as conn:
        plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")
        lines = (str(r[0]) for r in plan.fetchall())
        # The literal id lists would fill screens; the plan's shape is what matters.
        return "\n".join(re.sub(r"'\{[^}]{80,}\}'", "'{…ids…}'", line) for line in lines)


def sql_text(stmt: Select[Any]) -> str:
    return str(stmt.compile(dialect=PG))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="an admin URL (CREATE DATABASE)")
    parser.add_argument("--quick", action="store_true", help="10,000 deals, 200 users a page")
    parser.add_argument("--deals", type=int, help="deals to load (default 100,000)")
    parser.add_argument("--users", type=int, help="random users per page (default 1,000)")
    parser.add_argument("--reuse", action="store_true", help="keep a database already loaded")
    args = parser.parse_args(argv)
    deals = args.deals or (10_000 if args.quick else 100_000)
    users = args.users or (200 if args.quick else 1_000)
    dsn = with_database(args.url, DB_NAME)

    loaded: tuple[int, int] | None = None
    if args.reuse:
        try:
            with psycopg.connect(dsn) as conn:
                loaded = (_count(conn, "deals"), _count(conn, "quote_versions"))
            if loaded[0] != deals:
                loaded = None
        except psycopg.Error:
            loaded = None
    if loaded is None:
        with console.status(f"loading {deals:,} deals and about {deals * 10:,} quote versions"):
            n_deals, n_versions, seconds = load(args.url, deals)
        console.print(
            f"loaded {n_deals:,} deals, {n_versions:,} quote versions in "
            f"{seconds:.0f} s (generate_series, then VACUUM ANALYZE)"
        )
    else:
        n_deals, n_versions = loaded
        console.print(f"reusing {n_deals:,} deals, {n_versions:,} quote versions")

    engine = create_engine(sa_url(dsn), pool_size=1)
    rng = random.Random(7)
    with engine.connect() as conn:
        ids = {
            "seller": [
                f"{x}"
                for x in conn.execute(
                    select(m.User.id).where(m.User.email.like("seller%"))
                ).scalars()
            ],
            "buyer": [
                f"{x}"
                for x in conn.execute(
                    select(m.User.id).where(m.User.email.like("buyer%"))
                ).scalars()
            ],
        }
        results: dict[str, Timing] = {}
        for page in PAGES:
            timing = Timing()
            sample = [rng.choice(ids[page.role]) for _ in range(users)]
            for user_id in sample[: min(20, users)]:  # warm the caches and the plan cache
                run_page(conn, page, user_id)
            for user_id in sample:
                page_ms, main_ms, fetched = run_page(conn, page, user_id)
                timing.page.append(page_ms)
                timing.main.append(main_ms)
                timing.rows.append(sum(len(i) for _e, i in fetched))
                timing.baseline.append(run_baseline(conn, fetched))
            results[page.name] = timing
            conn.rollback()
        # The proposed dashboard rewrite against the current statement, same sellers.
        sellers = [rng.choice(ids["seller"]) for _ in range(users)]
        rewrite: dict[str, list[float]] = {"current (OR)": [], "proposed (UNION ALL)": []}
        for user_id in sellers:
            for label, build in (
                ("current (OR)", dashboard_list),
                ("proposed (UNION ALL)", dashboard_list_union),
            ):
                t0 = time.perf_counter()
                got = conn.execute(build(user_id)).all()
                rewrite[label].append((time.perf_counter() - t0) * 1000)
                if label.startswith("current"):
                    expected = [r.id for r in got]
                elif [r.id for r in got] != expected:
                    raise SystemExit("the proposed dashboard statement returns other rows")
        conn.rollback()
    engine.dispose()

    table = Table(
        title=f"List pages on {n_deals:,} deals and {n_versions:,} quote versions, "
        f"{users:,} random users each (ms)",
        title_justify="left",
    )
    for col in (
        "page",
        "rows read",
        "page p50",
        "page p99",
        "list stmt p50",
        "list stmt p99",
        "by PK p50",
        "by PK p99",
        "ratio p50",
    ):
        table.add_column(col, justify="left" if col == "page" else "right")
    for page in PAGES:
        t = results[page.name]
        ratio = pct(t.page, 50) / pct(t.baseline, 50)
        table.add_row(
            page.name,
            f"{sum(t.rows) / len(t.rows):.0f}",
            f"{pct(t.page, 50):.2f}",
            f"{pct(t.page, 99):.2f}",
            f"{pct(t.main, 50):.2f}",
            f"{pct(t.main, 99):.2f}",
            f"{pct(t.baseline, 50):.2f}",
            f"{pct(t.baseline, 99):.2f}",
            f"{ratio:.2f}",
        )
    console.print(table)
    console.print(
        "page: every statement the page issues, on one connection (SQLAlchemy Core, "
        "psycopg 3); by PK: the same rows fetched with WHERE id IN (known ids)."
    )

    table = Table(
        title="Seller dashboard list statement: current against the proposed "
        "rewrite (ms, same sellers, same rows)",
        title_justify="left",
    )
    for col in ("statement", "p50", "p99"):
        table.add_column(col, justify="left" if col == "statement" else "right")
    for label, values in rewrite.items():
        table.add_row(label, f"{pct(values, 50):.2f}", f"{pct(values, 99):.2f}")
    console.print(table)

    # The busiest seller and buyer: the plans that matter most.
    with psycopg.connect(dsn) as conn:
        busiest = {
            role: str(
                conn.execute(  # type: ignore[index]
                    f"SELECT {role}_id FROM deals GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
                ).fetchone()[0]
            )
            for role in ("seller", "buyer")
        }
    plans_ok = True
    for page in PAGES:
        user_id = busiest[page.role]
        console.print(
            Panel(sql_text(page.main(user_id)), title=f"{page.name}: the SQL", expand=False)
        )
        plan = explain(dsn, page.main(user_id))
        uses = page.index in plan
        plans_ok &= uses
        console.print(
            Panel(plan, title=f"EXPLAIN (ANALYZE, BUFFERS), busiest {page.role}", expand=False)
        )
        console.print(
            f"[green]uses {page.index}[/]" if uses else f"[red]does not use {page.index}[/]"
        )
    with engine.connect() as conn:
        rows = conn.execute(dashboard_list(busiest["seller"])).all()
        qv = follow_ups(rows, api=False)[1]
    engine.dispose()
    console.print(
        Panel(
            explain(dsn, qv),
            title="EXPLAIN: the page's quote versions (busiest seller)",
            expand=False,
        )
    )
    console.print(
        Panel(
            sql_text(dashboard_list_union(busiest["seller"])),
            title="proposed seller dashboard SQL",
            expand=False,
        )
    )
    console.print(
        Panel(
            explain(dsn, dashboard_list_union(busiest["seller"])),
            title="EXPLAIN: proposed, busiest seller",
            expand=False,
        )
    )

    for page in PAGES:
        t = results[page.name]
        for q in (50, 99):
            emit(
                f"queries: {page.name} p{q}",
                pct(t.page, q),
                pct(t.baseline, q),
                "ms",
                higher_is_better=False,
                deals=n_deals,
                quote_versions=n_versions,
                users=users,
            )
    emit(
        "queries: seller dashboard list stmt, proposed UNION ALL p50",
        pct(rewrite["proposed (UNION ALL)"], 50),
        pct(rewrite["current (OR)"], 50),
        "ms",
        higher_is_better=False,
        baseline_is="the current OR statement",
    )
    return 0 if plans_ok else 1


if __name__ == "__main__":
    sys.exit(main())

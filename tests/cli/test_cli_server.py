"""The server-side commands through Typer: db upgrade, users add, demo, audit, serve."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import select, text
from typer.testing import CliRunner

from dealroom.cli import app as dealroom_app
from dealroom.config import get_config
from dealroom.db import models as m
from dealroom.db.migrate import head_revision
from dealroom.db.session import Database, make_engine
from dealroom.services import accounts
from dealroom.services.audit import chain
from dealroom.services.uow import session_scope


@pytest.fixture
def cli() -> typer.Typer:
    return dealroom_app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'dealroom.db'}"
    monkeypatch.setenv("DEALROOM_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "200")  # Rich tables on one line each
    get_config.cache_clear()
    yield url
    get_config.cache_clear()


def invoke(runner: CliRunner, cli: typer.Typer, *args: str) -> Any:
    return runner.invoke(cli, list(args), catch_exceptions=False)


def database(url: str) -> Database:
    return Database(make_engine(url))


# --- db upgrade -------------------------------------------------------------------------


def test_db_upgrade_migrates_an_empty_database_then_says_it_is_at_head(
    runner: CliRunner, cli: typer.Typer, db_url: str
) -> None:
    first = invoke(runner, cli, "db", "upgrade")
    assert first.exit_code == 0, first.output
    head = head_revision()
    assert head
    assert f"to revision {head}" in first.output
    again = invoke(runner, cli, "db", "upgrade")
    assert again.exit_code == 0
    assert f"already at revision {head}" in again.output
    db = database(db_url)
    with session_scope(db, write=False) as s:
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
    db.engine.dispose()


# --- users add --------------------------------------------------------------------------


def test_users_add_creates_an_admin_who_can_sign_in(
    runner: CliRunner, cli: typer.Typer, db_url: str
) -> None:
    r = invoke(runner, cli, "users", "add", "Dana@Dealroom.example", "--name", "Dana Admin",
               "--password", "first admin pass", "--admin", "--organization", "Dealroom",
               "--kyc")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "added dana@dealroom.example (admin)" in r.output
    db = database(db_url)
    with session_scope(db) as s:
        user = accounts.authenticate(s, "dana@dealroom.example", "first admin pass")
        assert user.roles == ["admin"]
        assert user.organization == "Dealroom"
        assert user.kyc_verified is True
    db.engine.dispose()


def test_users_add_without_roles_adds_a_plain_user_and_operator_adds_one(
    runner: CliRunner, cli: typer.Typer, db_url: str
) -> None:
    plain = invoke(runner, cli, "users", "add", "amal@acme.example", "--name", "Amal",
                   "--password", "12345678")  # fmt: skip
    assert plain.exit_code == 0
    assert "(user)" in plain.output
    ops = invoke(runner, cli, "users", "add", "ops@dealroom.example", "--name", "Omar",
                 "--password", "12345678", "--operator")  # fmt: skip
    assert ops.exit_code == 0
    assert "(operator)" in ops.output


def test_users_add_refuses_a_duplicate_clearly(
    runner: CliRunner, cli: typer.Typer, db_url: str
) -> None:
    args = ["users", "add", "amal@acme.example", "--name", "Amal", "--password", "12345678"]
    assert invoke(runner, cli, *args).exit_code == 0
    args[2] = "AMAL@acme.example"
    again = invoke(runner, cli, *args)
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_users_add_lists_every_invalid_value(
    runner: CliRunner, cli: typer.Typer, db_url: str
) -> None:
    r = invoke(runner, cli, "users", "add", "not-an-email", "--name", "A", "--password", "short")
    assert r.exit_code == 1
    assert "email" in r.output
    assert "password" in r.output


# --- demo -------------------------------------------------------------------------------


def test_demo_builds_users_listings_and_deals_in_all_four_processes(
    runner: CliRunner, cli: typer.Typer, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "demo" / "dealroom-demo.db"
    r = invoke(runner, cli, "demo", "--no-serve", "--db", str(path), "--port", "8123")
    assert r.exit_code == 0, r.output
    assert "amal@acme.example" in r.output
    assert "buyer-demo-1" in r.output
    assert "admin@dealroom.example" in r.output
    assert "Acme Corp" in r.output
    assert "http://127.0.0.1:8123" in r.output

    db = database(f"sqlite:///{path}")
    with session_scope(db, write=False) as s:
        users = s.execute(select(m.User)).scalars().all()
        assert len(users) == 8
        assert sum("admin" in u.roles for u in users) == 1
        assert sum("operator" in u.roles for u in users) == 1
        listings = s.execute(select(m.Listing)).scalars().all()
        assert len(listings) >= 8
        assert {li.currency for li in listings} == {"SAR", "USD"}
        assert {li.sale_mode for li in listings} == {"negotiable", "buy_now", "auction"}
        assert "buy" in {li.kind for li in listings}
        deals = s.execute(select(m.Deal)).scalars().all()
        states = {(d.process_name, d.state) for d in deals}
        assert {d.process_name for d in deals} == {"rfq", "market", "offer", "negotiation"}
        assert {
            ("rfq", "accepted"), ("rfq", "counter-pending"), ("market", "closed-won"),
            ("market", "terms-agreed"), ("market", "offer-pending"), ("offer", "offer-pending"),
            ("negotiation", "offer-pending"), ("negotiation", "completed"),
        } <= states  # fmt: skip
        assert s.execute(select(m.Escrow)).scalars().all()
        assert s.execute(select(m.Shipment)).scalars().all()
        for deal in deals:
            result = chain.verify_deal(s, deal)
            assert result.valid, (deal.ref, result)
            assert result.events >= 1
    db.engine.dispose()


def test_demo_starts_fresh_each_run(
    runner: CliRunner, cli: typer.Typer, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "demo.db"
    for _ in range(2):
        r = invoke(runner, cli, "demo", "--no-serve", "--db", str(path))
        assert r.exit_code == 0, r.output
    db = database(f"sqlite:///{path}")
    with session_scope(db, write=False) as s:
        assert len(s.execute(select(m.User)).scalars().all()) == 8
    db.engine.dispose()


def test_demo_serves_the_demo_database(
    runner: CliRunner, cli: typer.Typer, db_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append((app, kw)))
    r = invoke(runner, cli, "demo", "--db", str(tmp_path / "demo.db"), "--port", "8555")
    assert r.exit_code == 0, r.output
    ((app, kw),) = calls
    assert kw == {"host": "127.0.0.1", "port": 8555}
    assert str(tmp_path / "demo.db") in app.state.config.database_url
    app.state.db.engine.dispose()


# --- audit ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo, built once for the audit tests; each test works on its own copy."""
    path = tmp_path_factory.mktemp("demo") / "dealroom-demo.db"
    r = CliRunner().invoke(
        dealroom_app, ["demo", "--no-serve", "--db", str(path)], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    return path


@pytest.fixture
def demo_db(demo_file: Path, db_url: str) -> Iterator[Database]:
    """A copy of the demo at the configured database URL, so the audit commands find it."""
    target = Path(db_url.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{demo_file}{suffix}")
        if source.exists():
            shutil.copyfile(source, f"{target}{suffix}")
    db = database(db_url)
    yield db
    db.engine.dispose()


def first_deal(db: Database, process: str = "rfq") -> m.Deal:
    with session_scope(db, write=False) as s:
        return s.execute(
            select(m.Deal).where(m.Deal.process_name == process, m.Deal.state == "accepted")
        ).scalar_one()


def test_audit_verify_every_demo_deal_by_ref_and_by_id(
    runner: CliRunner, cli: typer.Typer, demo_db: Database
) -> None:
    with session_scope(demo_db, write=False) as s:
        deals = [(d.id, d.ref) for d in s.execute(select(m.Deal)).scalars()]
    assert len(deals) == 9
    for _deal_id, ref in deals:
        r = invoke(runner, cli, "audit", "verify", ref)
        assert r.exit_code == 0, r.output
        assert f"valid {ref}" in r.output
    by_id = invoke(runner, cli, "audit", "verify", deals[0][0])
    assert by_id.exit_code == 0
    lower = invoke(runner, cli, "audit", "verify", deals[0][1].lower())
    assert lower.exit_code == 0


def test_audit_verify_names_the_first_tampered_event(
    runner: CliRunner, cli: typer.Typer, demo_db: Database
) -> None:
    deal = first_deal(demo_db)
    with session_scope(demo_db) as s:
        s.execute(
            text("UPDATE events SET payload = :p WHERE deal_id = :d AND seq = 2"),
            {"p": json.dumps({"transition": "send-quote", "terms": {"unit_price": "1.00"}}),
             "d": deal.id},
        )  # fmt: skip
    r = invoke(runner, cli, "audit", "verify", deal.ref)
    assert r.exit_code == 1
    assert "invalid" in r.output
    assert "first bad seq 2" in r.output


def test_audit_verify_an_unknown_deal_fails_clearly(
    runner: CliRunner, cli: typer.Typer, demo_db: Database
) -> None:
    r = invoke(runner, cli, "audit", "verify", "DEAL-1999-0001")
    assert r.exit_code == 1
    assert "no deal" in r.output


def test_audit_export_json_to_stdout(
    runner: CliRunner, cli: typer.Typer, demo_db: Database
) -> None:
    deal = first_deal(demo_db)
    r = invoke(runner, cli, "audit", "export", deal.ref, "--format", "json")
    assert r.exit_code == 0, r.output
    trail = json.loads(r.stdout)
    assert trail["ref"] == deal.ref
    assert trail["exported_verification"]["valid"] is True
    assert [e["seq"] for e in trail["events"]] == list(range(1, len(trail["events"]) + 1))
    assert trail["events"][0]["type"] == "RFQ_CREATED"


def test_audit_export_csv_to_a_file(
    runner: CliRunner, cli: typer.Typer, demo_db: Database, tmp_path: Path
) -> None:
    deal = first_deal(demo_db)
    out = tmp_path / "trail.csv"
    r = invoke(runner, cli, "audit", "export", deal.id, "--format", "csv", "--output", str(out))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    with session_scope(demo_db, write=False) as s:
        count = len(list(chain.deal_events(s, deal.id)))
    assert len(rows) == count
    assert rows[0]["seq"] == "1"
    assert rows[-1]["hash"]
    assert "chain valid" in r.output


def test_audit_export_refuses_an_unknown_format(
    runner: CliRunner, cli: typer.Typer, demo_db: Database
) -> None:
    deal = first_deal(demo_db)
    r = runner.invoke(cli, ["audit", "export", deal.ref, "--format", "xml"])
    assert r.exit_code == 2


def test_audit_on_a_missing_database_file_fails_clearly(
    runner: CliRunner, cli: typer.Typer, db_url: str
) -> None:
    r = invoke(runner, cli, "audit", "verify", "DEAL-2026-0001")
    assert r.exit_code == 1
    assert "no database file" in r.output


# --- serve ------------------------------------------------------------------------------


def test_serve_refuses_several_workers_on_sqlite(
    runner: CliRunner, cli: typer.Typer, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("must not start"))
    r = invoke(runner, cli, "serve", "--workers", "4")
    assert r.exit_code == 1
    assert "PostgreSQL" in r.output


def test_serve_migrates_sqlite_then_runs_uvicorn(
    runner: CliRunner, cli: typer.Typer, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: calls.append((a, k)))
    r = invoke(runner, cli, "serve", "--port", "8765", "--host", "0.0.0.0")
    assert r.exit_code == 0, r.output
    ((args, kw),) = calls
    assert args == ("dealroom.app:create_app",)
    assert kw["factory"] is True
    assert kw["port"] == 8765
    assert kw["host"] == "0.0.0.0"
    assert kw["workers"] == 1
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()

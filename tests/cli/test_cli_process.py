"""`dealroom process …` and `dealroom demo-engine`, run through Typer's test runner."""

from __future__ import annotations

import re
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

import factories
from dealroom.cli import app
from dealroom.cli.process import SETTING_RULES, import_file, resolve_process
from dealroom.db.models import StoredProcess
from dealroom.db.session import Database, make_engine
from dealroom.demo.walk import walk
from dealroom.domain.actions import ACTIONS
from dealroom.domain.engine import fire
from dealroom.domain.loader import load_text
from dealroom.domain.settings import Settings
from dealroom.domain.state import Payload
from dealroom.domain.timeexpr import ARG_TIMEPOINTS, SIMPLE_TIMEPOINTS
from dealroom.services.processes import UnknownProcessError
from dealroom.services.uow import session_scope

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "processes.md"
EDN_FIXTURES = ROOT / "tests" / "fixtures" / "sharetribe"
RFQ_TOML = ROOT / "src" / "dealroom" / "processes" / "rfq.toml"

# Wide enough that Rich never folds a name the assertions look for.
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})

SMALL_EDN = """
{:format :v3
 :transitions
 [{:name :transition/request, :to :state/requested, :actor :actor.role/customer, :actions []}
  {:name :transition/accept, :from :state/requested, :to :state/accepted,
   :actor :actor.role/provider, :actions [{:name :action/stripe-capture-payment-intent}]}
  {:name :transition/expire, :from :state/requested, :to :state/expired,
   :at {:fn/plus [{:fn/timepoint [:time/first-entered-state :state/requested]}
                  {:fn/period ["P3D"]}]}
   :actions []}]
 :notifications
 [{:name :notification/new-request, :on :transition/request,
   :to :actor.role/provider, :template :new-request}]}
"""

BROKEN_TOML = """
[process]
name = "broken"

[states]
open = "Open"
done = "Done"
limbo = "Nobody gets here"

[[transitions]]
name = "start"
to = "open"
actor = "buyer"
actions = ["no-such-action"]

[[transitions]]
name = "finish"
from = "open"
to = "done"
actor = "wizard"
"""


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SQLite database file of its own (not created until something is imported)."""
    path = tmp_path / "p.db"
    monkeypatch.setenv("DEALROOM_DATABASE_URL", f"sqlite:///{path}")
    return path


def stored_rows(path: Path) -> list[StoredProcess]:
    engine = make_engine(f"sqlite:///{path}")
    try:
        with session_scope(Database(engine), write=False) as s:
            query = select(StoredProcess).order_by(StoredProcess.name, StoredProcess.version)
            return list(s.execute(query).scalars())
    finally:
        engine.dispose()


def doc_example() -> str:
    """The worked example: the ```toml block of docs/processes.md that starts with `# sample`."""
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    examples = [b for b in blocks if b.startswith("# sample.toml")]
    assert len(examples) == 1, "docs/processes.md should hold one complete example"
    return examples[0]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the documentation ---------------------------------------------------------------------


def test_the_worked_example_in_the_docs_loads_and_runs_a_deal_to_an_order():
    process = load_text(doc_example(), source="docs/processes.md")
    assert process.name == "sample"
    assert len(process.states) == 4
    assert process.final_states == {"accepted", "declined", "expired"}

    deal = factories.new_deal(process)
    opened = fire(
        process,
        deal,
        "make-offer",
        factories.buyer(),
        Payload(terms={"unit_price": "90.00", "quantity": 100}),
        now=factories.T0,
    )
    assert {t.name for t in opened.timers} == {"expire", "offer-waiting", "offer-expiring"}
    countered = fire(
        process,
        opened.deal,
        "counter",
        factories.seller(),
        Payload(terms={"unit_price": "96.00"}, message="Meet me halfway"),
        now=factories.T0,
    )
    accepted = fire(
        process, countered.deal, "accept", factories.buyer(), Payload(), now=factories.T0
    )
    assert accepted.to_state == "accepted"
    assert [e.type for e in accepted.events] == ["COUNTER_ACCEPTED", "ORDER_CREATED"]
    assert accepted.effects[0].params["total"] == "9600.00"


def test_the_docs_name_every_action_setting_and_timepoint():
    text = DOC.read_text(encoding="utf-8")
    missing = [a for a in sorted(ACTIONS) if f"`{a}`" not in text]
    missing += [f.name for f in fields(Settings) if f"`{f.name}`" not in text]
    missing += [t for t in sorted(SIMPLE_TIMEPOINTS | ARG_TIMEPOINTS) if f"`{t}" not in text]
    assert not missing, f"docs/processes.md does not describe: {missing}"


def test_every_setting_names_the_rule_it_implements():
    assert set(SETTING_RULES) == {f.name for f in fields(Settings)}


# --- resolving names -----------------------------------------------------------------------


def test_resolve_finds_a_built_in_process_without_creating_a_database(db: Path):
    assert resolve_process("rfq").name == "rfq"
    assert not db.exists()


def test_resolve_finds_an_imported_process_in_the_database(db: Path, tmp_path: Path):
    import_file(write(tmp_path, "sample.toml", doc_example()), "sample")
    found = resolve_process("sample")
    assert (found.name, found.version, found.source) == ("sample", 1, "database:sample@1")


def test_resolve_names_the_known_processes_for_an_unknown_one(db: Path, tmp_path: Path):
    with pytest.raises(UnknownProcessError, match="Known processes: rfq, market, offer"):
        resolve_process("nope")
    import_file(write(tmp_path, "sample.toml", doc_example()), "sample")
    with pytest.raises(UnknownProcessError, match=r"negotiation, sample\."):
        resolve_process("nope")


# --- process list --------------------------------------------------------------------------


def test_list_shows_the_built_in_processes_without_creating_a_database(db: Path):
    result = runner.invoke(app, ["process", "list"])
    assert result.exit_code == 0, result.output
    for name, title in [("rfq", "Request for quote"), ("market", "Market deal room")]:
        assert re.search(rf"{name}\s+│\s+1\s+│\s+{title}", result.output)
    assert "built-in" in result.output
    assert not db.exists()


def test_import_stores_a_toml_file_in_the_database_and_list_shows_it(db: Path, tmp_path: Path):
    source = write(tmp_path, "my-sample.toml", doc_example())
    result = runner.invoke(app, ["process", "import", str(source), "--name", "sample"])
    assert result.exit_code == 0, result.output
    assert "Imported sample v1" in result.output
    assert str(db) in result.output

    [row] = stored_rows(db)
    assert (row.name, row.version, row.source_format) == ("sample", 1, "toml")
    assert "# A nudge one day after an offer" in row.definition  # kept as written

    listing = runner.invoke(app, ["process", "list"])
    assert listing.exit_code == 0
    line = next(line for line in listing.output.splitlines() if "sample" in line)
    assert re.search(r"sample\s+│\s+1\s+│\s+Sample offer", line)
    assert "imported" in line


def test_each_import_stores_a_new_version_and_replaces_nothing(db: Path, tmp_path: Path):
    source = write(tmp_path, "sample.toml", doc_example())
    first = runner.invoke(app, ["process", "import", str(source), "--name", "sample"])
    assert "Imported sample v1" in first.output
    source.write_text(doc_example().replace("Sample offer", "Sample offer, revised"), "utf-8")
    second = runner.invoke(app, ["process", "import", str(source), "--name", "sample"])
    assert second.exit_code == 0, second.output
    assert "Imported sample v2" in second.output

    assert [(r.name, r.version) for r in stored_rows(db)] == [("sample", 1), ("sample", 2)]
    line = next(
        x for x in runner.invoke(app, ["process", "list"]).output.splitlines() if "sam" in x
    )
    assert re.search(r"sample\s+│\s+2\s+│\s+Sample offer, revised", line)

    latest = runner.invoke(app, ["process", "show", "sample"])
    assert "sample v2 — Sample offer, revised" in latest.output
    older = runner.invoke(app, ["process", "show", "sample", "--version", "1"])
    assert older.exit_code == 0, older.output
    assert re.search(r"sample v1 — Sample offer\s+│", older.output)
    missing = runner.invoke(app, ["process", "show", "sample", "--version", "3"])
    assert missing.exit_code == 1
    assert "has no version 3" in missing.output


def test_the_import_help_says_versions_replace_nothing():
    result = runner.invoke(app, ["process", "import", "--help"])
    assert result.exit_code == 0
    assert "--replace" not in result.output
    assert "deals keep the version they started with" in result.output


def test_a_stored_definition_that_no_longer_loads_is_listed_as_such_and_show_names_its_problems(
    db: Path, tmp_path: Path
):
    assert import_file(write(tmp_path, "sample.toml", doc_example()), "sample").version == 1
    engine = make_engine(f"sqlite:///{db}")
    with session_scope(Database(engine)) as s:  # as if the loader had grown stricter since
        s.add(StoredProcess(name="broken", version=1, source_format="toml",
                            definition=BROKEN_TOML, created_at=factories.T0))  # fmt: skip
    engine.dispose()

    listing = runner.invoke(app, ["process", "list"])
    assert listing.exit_code == 0, listing.output
    assert "does not load" in next(x for x in listing.output.splitlines() if "broken" in x)
    assert "Sample offer" in listing.output

    shown = runner.invoke(app, ["process", "show", "broken"])
    assert shown.exit_code == 1
    assert "unknown actor 'wizard'" in shown.output


def test_import_under_a_new_name_renames_the_process(db: Path, tmp_path: Path):
    source = write(tmp_path, "sample.toml", doc_example())
    result = runner.invoke(app, ["process", "import", str(source), "--name", "quick-offer"])
    assert result.exit_code == 0, result.output
    assert resolve_process("quick-offer").name == "quick-offer"
    assert 'name = "quick-offer"' in stored_rows(db)[0].definition
    shown = runner.invoke(app, ["process", "show", "quick-offer"])
    assert shown.exit_code == 0
    assert "quick-offer v1" in shown.output
    assert "imported: database:quick-offer@1" in shown.output


def test_import_converts_a_sharetribe_edn_to_toml(db: Path, tmp_path: Path):
    source = write(tmp_path, "process.edn", SMALL_EDN)
    result = runner.invoke(app, ["process", "import", str(source), "--name", "tiny-booking"])
    assert result.exit_code == 0, result.output

    [row] = stored_rows(db)
    assert row.source_format == "edn"
    process = load_text(row.definition)  # stored as dealroom TOML
    assert process.name == "tiny-booking"
    assert process.transitions["accept"].actors == {"seller"}
    assert process.transitions["accept"].actions == ("payment:stripe-capture-payment-intent",)
    assert process.transitions["expire"].timers[0].at.text() == (
        "first-entered-state(requested) + P3D"
    )
    graph = runner.invoke(app, ["process", "graph", "tiny-booking"])
    assert graph.exit_code == 0, graph.output
    assert "requested --> expired : ⏱ expire (system)" in graph.output


@pytest.mark.parametrize("edn", sorted(p.name for p in EDN_FIXTURES.glob("*.edn")))
def test_import_stores_each_sharetribe_fixture(db: Path, edn: str):
    result = runner.invoke(app, ["process", "import", str(EDN_FIXTURES / edn), "--name", "st"])
    assert result.exit_code == 0, result.output
    assert "Imported st v1" in result.output
    shown = runner.invoke(app, ["process", "show", "st"])
    assert shown.exit_code == 0, shown.output
    assert "st v1" in shown.output


def test_import_refuses_a_built_in_name(db: Path, tmp_path: Path):
    source = write(tmp_path, "sample.toml", doc_example())
    result = runner.invoke(app, ["process", "import", str(source), "--name", "rfq"])
    assert result.exit_code == 1
    assert "'rfq' is a built-in process" in result.output
    assert not db.exists()


def test_import_refuses_a_badly_formed_name(db: Path, tmp_path: Path):
    source = write(tmp_path, "sample.toml", doc_example())
    result = runner.invoke(app, ["process", "import", str(source), "--name", "Bad Name"])
    assert result.exit_code == 1
    assert "not a process name" in result.output
    assert not db.exists()


def test_import_of_a_broken_file_stores_nothing_and_lists_every_problem(db: Path, tmp_path: Path):
    source = write(tmp_path, "broken.toml", BROKEN_TOML)
    result = runner.invoke(app, ["process", "import", str(source), "--name", "broken"])
    assert result.exit_code == 1
    assert re.search(
        rf"{re.escape(str(source))}: \d+ problem\(s\)", result.output.replace("\n", "")
    )
    assert "unknown action 'no-such-action'" in result.output
    assert "unknown actor 'wizard'" in result.output
    assert not db.exists()


def test_import_of_a_broken_edn_names_the_source_file(db: Path, tmp_path: Path):
    source = write(tmp_path, "process.edn", "{:format")
    result = runner.invoke(app, ["process", "import", str(source), "--name", "x"])
    assert result.exit_code == 1
    assert "syntax" in result.output
    assert not db.exists()


def test_import_of_a_missing_file_fails(db: Path, tmp_path: Path):
    result = runner.invoke(
        app, ["process", "import", str(tmp_path / "nope.toml"), "--name", "nope"]
    )
    assert result.exit_code == 1
    assert "no such file" in result.output


def test_a_running_server_uses_an_import_at_once(db: Path, tmp_path: Path):
    from fastapi.testclient import TestClient

    from dealroom.app import create_app
    from dealroom.config import from_env
    from dealroom.db.migrate import upgrade
    from dealroom.services import accounts

    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    database = Database(engine)
    with session_scope(database) as s:
        accounts.create_user(
            s, email="ops@example.com", name="Ops", password="correct horse", now=factories.T0
        )
    try:
        with TestClient(create_app(from_env(), database=database)) as client:
            login = {"email": "ops@example.com", "password": "correct horse"}
            token = client.post("/v1/auth/token", json=login).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            assert client.get("/v1/processes/sample", headers=auth).status_code == 404

            source = write(tmp_path, "sample.toml", doc_example())
            for version in (1, 2):
                imported = runner.invoke(app, ["process", "import", str(source), "-n", "sample"])
                assert imported.exit_code == 0, imported.output
                answer = client.get("/v1/processes/sample", headers=auth)
                assert answer.status_code == 200, answer.text
                assert (answer.json()["name"], answer.json()["version"]) == ("sample", version)
            names = [p["name"] for p in client.get("/v1/processes", headers=auth).json()["items"]]
            assert "sample" in names
    finally:
        engine.dispose()


def test_import_into_a_postgresql_database_behind_the_head_revision_asks_for_db_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DEALROOM_DATABASE_URL", "postgresql://u:secret@127.0.0.1:1/dealroom")
    monkeypatch.setattr("dealroom.cli.common.current_revision", lambda engine: "0001")
    source = write(tmp_path, "sample.toml", doc_example())
    result = runner.invoke(app, ["process", "import", str(source), "--name", "sample"])
    assert result.exit_code == 1
    out = result.output.replace("\n", "")
    assert "at revision 0001" in out
    assert "run `dealroom db upgrade` first" in out
    assert "secret" not in out


def test_an_unreachable_database_is_reported_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DEALROOM_DATABASE_URL", "postgresql://u:secret@127.0.0.1:1/dealroom")
    result = runner.invoke(app, ["process", "list"])
    assert result.exit_code == 1
    assert "is unavailable" in result.output
    assert "secret" not in result.output


# --- process show --------------------------------------------------------------------------


def test_show_prints_states_transitions_timers_settings_and_notifications(db: Path):
    result = runner.invoke(app, ["process", "show", "rfq"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "rfq v1 — Request for quote" in out
    assert re.search(r"accepted\s+│\s+Terms accepted; the order is created\s+│\s+✓", out)
    assert "buyer: counter-pending" in out  # the destination by role
    assert "counterparty" in out
    assert "entered + setting(first_quote_window)" in out
    assert "NEG-T01" in out
    assert re.search(r"max_rounds\s+│\s+5\s+│\s+NEG-L01", out)
    assert "quote_expiring_notice before NEG-T03" in out


def test_show_accepts_a_file(tmp_path: Path, db: Path):
    result = runner.invoke(app, ["process", "show", str(write(tmp_path, "s.toml", doc_example()))])
    assert result.exit_code == 0, result.output
    assert "sample v1" in result.output


def test_show_of_an_unknown_process_fails_naming_the_known_ones(db: Path):
    result = runner.invoke(app, ["process", "show", "nope"])
    assert result.exit_code == 1
    assert "no process named 'nope'" in result.output
    assert "rfq" in result.output


# --- process check -------------------------------------------------------------------------


def test_check_accepts_a_built_in_file():
    result = runner.invoke(app, ["process", "check", str(RFQ_TOML)])
    assert result.exit_code == 0, result.output
    assert "OK rfq v1: 8 states (5 final), 9 transitions (1 initial)" in result.output


@pytest.mark.parametrize("edn", sorted(p.name for p in EDN_FIXTURES.glob("*.edn")))
def test_check_accepts_sharetribe_processes(edn: str):
    result = runner.invoke(app, ["process", "check", str(EDN_FIXTURES / edn)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK {Path(edn).stem} v1")


def test_check_lists_every_problem_and_exits_1(tmp_path: Path):
    result = runner.invoke(app, ["process", "check", str(write(tmp_path, "b.toml", BROKEN_TOML))])
    assert result.exit_code == 1
    assert "problem(s)" in result.output
    assert "unknown action 'no-such-action'" in result.output
    assert "unknown actor 'wizard'" in result.output


def test_check_reports_an_unreachable_state(tmp_path: Path):
    text = BROKEN_TOML.replace('actions = ["no-such-action"]', "").replace("wizard", "seller")
    result = runner.invoke(app, ["process", "check", str(write(tmp_path, "b.toml", text))])
    assert result.exit_code == 1
    assert "state 'limbo': is not reachable from any initial transition" in result.output


def test_check_reports_bad_toml_and_bad_edn(tmp_path: Path):
    toml = runner.invoke(app, ["process", "check", str(write(tmp_path, "x.toml", "[process\n"))])
    assert toml.exit_code == 1
    assert "syntax" in toml.output
    edn = runner.invoke(app, ["process", "check", str(write(tmp_path, "x.edn", "{:format"))])
    assert edn.exit_code == 1
    assert "syntax" in edn.output


def test_check_of_a_missing_file_fails(tmp_path: Path):
    result = runner.invoke(app, ["process", "check", str(tmp_path / "missing.toml")])
    assert result.exit_code == 1
    assert "no such file" in result.output


def test_problem_text_is_printed_literally_not_as_markup(tmp_path: Path):
    text = "[process]\nname = 'x'\n[[transitions]]\nname = 'a'\nto = 'b'\nactor = 'buyer'\n"
    result = runner.invoke(app, ["process", "check", str(write(tmp_path, "x.toml", text))])
    assert result.exit_code == 1
    assert "missing [states] table" in result.output


# --- process graph -------------------------------------------------------------------------


def test_graph_prints_mermaid_for_a_name(db: Path):
    result = runner.invoke(app, ["process", "graph", "market"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("stateDiagram-v2\n")
    assert "[*] --> offer_pending : make-offer (buyer, seller)" in result.output
    assert "closed_won --> [*]" in result.output


def test_graph_reads_a_file_and_writes_to_a_file(tmp_path: Path):
    out = tmp_path / "sample.mmd"
    source = write(tmp_path, "sample.toml", doc_example())
    result = runner.invoke(app, ["process", "graph", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "offer_pending --> expired : ⏱ expire (system)" in out.read_text(encoding="utf-8")


def test_graph_of_an_unknown_name_fails(db: Path):
    result = runner.invoke(app, ["process", "graph", "nope"])
    assert result.exit_code == 1
    assert "no process named 'nope'" in result.output


def test_graph_in_the_docs_matches_the_command(tmp_path: Path):
    source = write(tmp_path, "sample.toml", doc_example())
    drawn = runner.invoke(app, ["process", "graph", str(source)]).output
    assert f"```mermaid\n{drawn}```" in DOC.read_text(encoding="utf-8")


# --- the command line as a whole -----------------------------------------------------------


def test_process_without_a_subcommand_shows_help():
    result = runner.invoke(app, ["process"])
    assert "list" in result.output
    assert "import" in result.output


# --- dealroom demo -------------------------------------------------------------------------


def test_demo_walks_the_rfq_reference_example_to_the_order():
    result = walk()
    assert [o.to_state for _, o in result.outcomes] == [
        "quote-requested",
        "quote-pending",
        "counter-pending",
        "quote-pending",
        "accepted",
    ]
    assert [(v.number, v.terms.unit_price, v.status) for v in result.deal.versions] == [
        (1, Decimal("50.00"), "countered"),
        (2, Decimal("45.00"), "countered"),
        (3, Decimal("47.00"), "accepted"),
    ]
    assert result.diff.summary == "Price reduced 6%, lead time reduced 2 days"
    assert result.order_total == Decimal("47000.00")


def test_demo_command_prints_the_timeline_versions_diff_and_total():
    result = runner.invoke(app, ["demo-engine"])
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        "Timeline for RFQ-2026-0042",
        "2026-02-01 09:00:00",
        *factories.REFERENCE_EVENTS,
        "Buyer: Acme Corp",
        "Seller: Parts Inc",
        "Price reduced 6%, lead time reduced 2 days",
        "47,000.00 SAR",
    ):
        assert text in out, text

"""Process definitions over HTTP: list, show, import (TOML and Sharetribe EDN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from dealroom.api.schemas import ProcessCreate
from dealroom.db.session import Database
from factories import T0
from people import Person, add_user, make_listing

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sharetribe"

QUICK = """
[process]
name = "quick-offer"
version = 1
title = "Quick offer"

[states]
offer-pending = "The buyer's offer waits for the seller"
agreed = "Agreed"
declined = "Declined"

[[transitions]]
name = "offer"
to = "offer-pending"
actor = "buyer"
actions = ["propose"]

[[transitions]]
name = "agree"
from = "offer-pending"
to = "agreed"
actor = "seller"
actions = ["accept-quote", "create-order"]

[[transitions]]
name = "decline"
from = "offer-pending"
to = "declined"
actor = "seller"
actions = ["reject-quote"]
"""


def staff(db: Database, role: str = "operator") -> Person:
    return add_user(db, T0, f"{role}@dealroom.example", roles=(role,))


def user(db: Database) -> Person:
    return add_user(db, T0, "amal@acme.example")


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in items}


def test_the_four_built_in_processes_are_listed(client: TestClient, db: Database) -> None:
    r = client.get("/v1/processes", headers=user(db).headers)
    assert r.status_code == 200
    procs = by_name(r.json()["items"])
    assert {"rfq", "market", "offer", "negotiation"} <= set(procs)
    assert all(p["builtin"] for p in procs.values())
    assert procs["offer"]["settings"]["offer_rules"] is True
    assert procs["rfq"]["settings"]["first_quote_window"] == "P2D"  # 48 h


def test_a_process_shows_states_transitions_timers_and_settings(
    client: TestClient, db: Database
) -> None:
    r = client.get("/v1/processes/rfq", headers=user(db).headers)
    assert r.status_code == 200
    rfq = r.json()
    assert rfq["name"] == "rfq"
    assert rfq["version"] == 1
    states = {s["name"]: s for s in rfq["states"]}
    assert states["accepted"]["final"] is True
    assert states["quote-pending"]["final"] is False
    assert states["quote-requested"]["description"]
    transitions = by_name(rfq["transitions"])
    request = transitions["request-quote"]
    assert request["initial"] is True
    assert request["from"] == []
    assert request["actors"] == ["buyer"]
    counter = transitions["counter"]
    assert counter["from"] == ["counter-pending", "quote-pending"]
    assert counter["to_by_role"] == {"buyer": "counter-pending", "seller": "quote-pending"}
    assert counter["actors"] == ["counterparty"]
    assert transitions["accept"]["actions"] == ["accept-quote", "create-order"]
    expire = transitions["expire"]
    assert expire["automatic"] is True
    assert expire["actors"] == ["system"]
    rules = {t["rule"] for t in expire["timers"]}
    assert "NEG-T01" in rules
    assert all(t["at"] and t["state"] for t in expire["timers"])
    assert rfq["settings"]["max_rounds"] == 5
    notes = by_name(rfq["notifications"])
    assert notes["quote-sent"]["to"] == ["buyer"]


def test_an_unknown_process_or_version_is_not_found(client: TestClient, db: Database) -> None:
    headers = user(db).headers
    for path in (
        "/v1/processes/haggle",
        "/v1/processes/rfq?version=9",
        "/v1/processes/" + "x" * 90,
    ):
        r = client.get(path, headers=headers)
        assert r.status_code == 404, path
        assert r.json()["code"] == "NEG-011"


def test_reading_processes_needs_a_signed_in_caller(client: TestClient) -> None:
    assert client.get("/v1/processes").status_code == 401
    assert client.get("/v1/processes/rfq").status_code == 401


def test_staff_import_a_toml_process_that_deals_use_at_once(
    client: TestClient, db: Database
) -> None:
    ops = staff(db)
    r = client.post("/v1/processes", json={"format": "toml", "definition": QUICK},
                    headers=ops.headers)  # fmt: skip
    assert r.status_code == 201, r.text
    quick = r.json()
    assert quick["name"] == "quick-offer"
    assert quick["version"] == 1
    assert quick["builtin"] is False
    assert {s["name"] for s in quick["states"]} == {"offer-pending", "agreed", "declined"}
    assert client.get("/v1/processes/quick-offer", headers=ops.headers).json() == quick
    assert "quick-offer" in by_name(
        client.get("/v1/processes", headers=ops.headers).json()["items"]
    )

    seller, buyer = add_user(db, T0, "nora@parts.example"), user(db)
    listing = make_listing(client, seller, process="quick-offer")
    deal = client.post(
        "/v1/deals",
        json={"listing_id": listing["id"], "transition": "offer",
              "terms": {"unit_price": "48.00", "quantity": 10}},
        headers=buyer.headers,
    )  # fmt: skip
    assert deal.status_code == 201, deal.text
    assert deal.json()["process"] == {"name": "quick-offer", "version": 1}
    assert deal.json()["state"] == "offer-pending"

    again = client.post(
        "/v1/processes",
        json={
            "format": "toml",
            "definition": QUICK.replace('title = "Quick offer"', 'title = "Q2"'),
        },
        headers=ops.headers,
    )
    assert again.status_code == 201
    assert again.json()["version"] == 2  # the next version; open deals keep theirs
    assert client.get("/v1/processes/quick-offer?version=1", headers=ops.headers).json() == quick


def test_an_admin_imports_a_sharetribe_edn_process(client: TestClient, db: Database) -> None:
    edn = (FIXTURES / "default-purchase.edn").read_text(encoding="utf-8")
    r = client.post(
        "/v1/processes",
        json={"format": "edn", "name": "purchase", "definition": edn},
        headers=staff(db, "admin").headers,
    )
    assert r.status_code == 201, r.text
    purchase = r.json()
    assert purchase["name"] == "purchase"
    transitions = by_name(purchase["transitions"])
    assert transitions["request-payment"]["actors"] == ["buyer"]
    assert any(t["automatic"] for t in purchase["transitions"])


def test_the_openapi_examples_import(client: TestClient, db: Database) -> None:
    ops = staff(db)
    schema = ProcessCreate.model_json_schema()
    for i, example in enumerate(schema["examples"]):
        body = {**example}
        if body["format"] == "edn":
            body["name"] = f"example-{i}"
        r = client.post("/v1/processes", json=body, headers=ops.headers)
        assert r.status_code == 201, r.text


def test_a_broken_definition_lists_every_problem(client: TestClient, db: Database) -> None:
    broken = QUICK.replace('actor = "seller"\nactions = ["reject-quote"]',
                           'actor = "wizard"\nactions = ["teleport"]')  # fmt: skip
    broken = broken.replace('to = "agreed"', 'to = "nowhere"')
    r = client.post("/v1/processes", json={"format": "toml", "definition": broken},
                    headers=staff(db).headers)  # fmt: skip
    assert r.status_code == 422
    problem = r.json()
    assert problem["code"] == "NEG-016"
    messages = " ".join(e["field"] + " " + e["message"] for e in problem["errors"])
    for word in ("wizard", "teleport", "nowhere"):
        assert word in messages, messages
    assert len(problem["errors"]) >= 3


def test_bad_toml_and_bad_edn_are_refused(client: TestClient, db: Database) -> None:
    headers = staff(db).headers
    for body in (
        {"format": "toml", "definition": "[process\nname="},
        {"format": "edn", "name": "junk", "definition": "{:format :v3 :transitions"},
        {"format": "edn", "name": "junk", "definition": "{:format :v2 :transitions []}"},
        {"format": "edn", "definition": "{:format :v3}"},  # EDN needs a name
        {"format": "toml", "name": "x", "definition": QUICK},  # TOML names itself
        {"format": "yaml", "definition": "a: b"},
        {"format": "toml", "definition": ""},
        {"format": "toml", "definition": "x" * 600_000},
    ):
        r = client.post("/v1/processes", json=body, headers=headers)
        assert r.status_code == 422, (body["format"], r.text[:200])
        assert r.json()["code"] == "NEG-016"


def test_a_built_in_name_cannot_be_replaced(client: TestClient, db: Database) -> None:
    fake = QUICK.replace('name = "quick-offer"', 'name = "rfq"')
    r = client.post("/v1/processes", json={"format": "toml", "definition": fake},
                    headers=staff(db).headers)  # fmt: skip
    assert r.status_code == 409
    assert r.json()["code"] == "NEG-014"


def test_only_staff_import(client: TestClient, db: Database) -> None:
    r = client.post("/v1/processes", json={"format": "toml", "definition": QUICK},
                    headers=user(db).headers)  # fmt: skip
    assert r.status_code == 403
    assert r.json()["code"] == "NEG-008"
    assert (
        client.post("/v1/processes", json={"format": "toml", "definition": QUICK}).status_code
        == 401
    )

"""The web pages over HTTP (TestClient, no browser): sign-in, listings, my deals, the deal
room and its forms with and without the page's script, the audit timeline, the operator
console, CSRF, friendly error pages, and formatting in the viewer's locale and zone."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from dealroom.clock import TestClock
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom.services.uow import session_scope
from people import PASSWORD, Person, add_user, make_listing

SCRIPT = {"X-Requested-With": "dealroom"}


@pytest.fixture
def people(db: Database, clock: TestClock) -> dict[str, Person]:
    now = clock.now()
    return {
        "buyer": add_user(db, now, "buyer@acme.example", name="Amal Haddad",
                          organization="Acme Corp"),
        "seller": add_user(db, now, "seller@parts.example", name="Nora Saleh",
                           organization="Parts Inc"),
        "other": add_user(db, now, "other@elsewhere.example"),
        "operator": add_user(db, now, "ops@market.example", name="Omar Operator",
                             roles=("operator",)),
    }  # fmt: skip


def as_user(client: TestClient, who: Person | None) -> None:
    client.cookies.clear()
    if who is not None:
        client.cookies.set("dealroom_token", who.token)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "no CSRF token on the page"
    return found[1]


def ids_on(html: str) -> set[str]:
    return set(re.findall(r'data-testid="([^"]+)"', html))


def market_deal(client: TestClient, people: dict[str, Person], **listing: Any) -> dict[str, Any]:
    """A market deal with the buyer's offer pending, opened over the API."""
    item = make_listing(client, people["seller"], currency="SAR", unit_price="50.00", **listing)
    r = client.post(
        "/v1/deals",
        json={"listing_id": item["id"], "transition": "make-offer",
              "terms": {"unit_price": "45.00", "quantity": 500}, "message": "Volume order"},
        headers=people["buyer"].headers,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return dict(r.json())


# --- visitors and sign-in ------------------------------------------------------------------


def test_a_visitor_sees_what_dealroom_is_and_the_demo_logins_when_the_demo_data_is_there(
    client: TestClient, db: Database, clock: TestClock
) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "Negotiate with receipts" in r.text
    assert "Sample logins" not in r.text
    add_user(db, clock.now(), "amal@acme.example")  # one of the demo's people
    r = client.get("/")
    assert "Sample logins" in r.text
    assert "buyer-demo-1" in r.text


def test_signing_in_sets_an_http_only_lax_cookie_and_goes_where_the_user_was_heading(
    client: TestClient, people: dict[str, Person]
) -> None:
    r = client.post("/login", data={"email": "BUYER@acme.example", "password": PASSWORD,
                                    "next": "/deals?view=buying"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert r.headers["location"] == "/deals?view=buying"
    cookie = r.headers["set-cookie"].lower()
    assert "dealroom_token=" in cookie
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    home = client.get("/")
    assert "Welcome back, Amal" in home.text
    assert 'data-testid="bell-count"' in home.text


def test_a_wrong_password_is_refused_on_the_form_which_keeps_the_email(
    client: TestClient, people: dict[str, Person]
) -> None:
    r = client.post("/login", data={"email": "buyer@acme.example", "password": "nope"})
    assert r.status_code == 401
    assert "Wrong email or password." in r.text
    assert 'value="buyer@acme.example"' in r.text
    assert "dealroom_token" not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
def test_sign_in_never_redirects_off_the_site(
    client: TestClient, people: dict[str, Person], target: str
) -> None:
    r = client.post("/login", data={"email": "buyer@acme.example", "password": PASSWORD,
                                    "next": target}, follow_redirects=False)  # fmt: skip
    assert r.headers["location"] == "/"


def test_a_sign_in_posted_from_another_site_is_refused(
    client: TestClient, people: dict[str, Person]
) -> None:
    r = client.post(
        "/login",
        data={"email": "buyer@acme.example", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert "another site" in r.text
    assert "set-cookie" not in r.headers


def test_pages_that_need_an_account_send_visitors_to_sign_in_and_back(client: TestClient) -> None:
    r = client.get("/deals?view=selling", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/deals%3Fview%3Dselling"


def test_an_expired_session_sends_the_user_to_sign_in_again(
    client: TestClient, people: dict[str, Person], clock: TestClock
) -> None:
    as_user(client, people["buyer"])
    clock.advance(hours=13)
    r = client.get("/deals", follow_redirects=False)
    assert r.status_code == 303
    assert "expired=1" in r.headers["location"]
    assert client.get(r.headers["location"]).text.count("Your session has ended") == 1


def test_signing_out_needs_the_csrf_token_and_clears_the_cookie(
    client: TestClient, people: dict[str, Person]
) -> None:
    as_user(client, people["buyer"])
    token = csrf_of(client.get("/").text)
    refused = client.post("/logout", data={"csrf": "0" * 64}, follow_redirects=False)
    assert refused.status_code == 403
    r = client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    assert 'dealroom_token=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]


# --- listings -----------------------------------------------------------------------------


def test_listings_can_be_searched_and_each_shows_its_open_offer_count(
    client: TestClient, people: dict[str, Person]
) -> None:
    deal = market_deal(client, people, title="M8 hex bolts, zinc plated")
    make_listing(client, people["seller"], title="Hydraulic hose fittings")
    r = client.get("/listings", params={"q": "bolts"})
    assert r.status_code == 200
    assert "M8 hex bolts, zinc plated" in r.text
    assert "Hydraulic hose fittings" not in r.text
    assert "1 open deal" in r.text
    page = client.get(f"/listings/{deal['listing_id']}")
    assert re.search(r'data-testid="offer-count">1<', page.text)


def test_a_listing_offers_the_moves_that_fit_its_sale_mode(
    client: TestClient, people: dict[str, Person]
) -> None:
    negotiable = make_listing(client, people["seller"])
    buy_now = make_listing(client, people["seller"], sale_mode="buy_now")
    rfq = make_listing(client, people["seller"], process="rfq")
    as_user(client, people["buyer"])
    assert {"action-make-offer"} <= ids_on(client.get(f"/listings/{negotiable['id']}").text)
    ids = ids_on(client.get(f"/listings/{buy_now['id']}").text)
    assert {"action-make-offer", "action-buy-now"} <= ids
    assert "action-request-quote" in ids_on(client.get(f"/listings/{rfq['id']}").text)
    as_user(client, people["seller"])  # the owner has no opening move on their own listing
    assert "action-make-offer" not in ids_on(client.get(f"/listings/{negotiable['id']}").text)
    as_user(client, None)
    assert "Sign in to start" in client.get(f"/listings/{negotiable['id']}").text


def test_an_offer_made_on_the_listing_page_opens_the_deal_room(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"])
    as_user(client, people["buyer"])
    page = client.get(f"/listings/{listing['id']}").text
    r = client.post(
        f"/listings/{listing['id']}/deals",
        data={"csrf": csrf_of(page), "transition": "make-offer", "unit_price": "1,234.50",
              "quantity": "100", "message": "For the new office"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303, r.text
    room = client.get(r.headers["location"])
    assert room.status_code == 200
    assert "SAR\u00a01,234.50" in room.text  # the locale's grouping was read, not refused
    assert "For the new office" in room.text


def test_a_refused_opening_offer_keeps_the_form_open_with_the_reason(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"], min_order_qty=100)
    as_user(client, people["buyer"])
    page = client.get(f"/listings/{listing['id']}").text
    r = client.post(
        f"/listings/{listing['id']}/deals",
        data={"csrf": csrf_of(page), "transition": "make-offer", "unit_price": "48.00",
              "quantity": "5", "message": "Small trial order"},
    )  # fmt: skip
    assert r.status_code == 422
    assert re.search(r'<details class="action[^"]*" data-action="make-offer" open>', r.text)
    assert 'value="5"' in r.text
    assert "Small trial order" in r.text
    assert re.search(r'data-error-for="quantity" >[^<]*\d', r.text) or re.search(
        r'data-error-for="quantity"\s*>[^<]+<', r.text
    )


# --- the deal room ------------------------------------------------------------------------


def test_the_deal_room_shows_everything_the_parties_need(
    client: TestClient, people: dict[str, Person]
) -> None:
    deal = market_deal(client, people, title="Steel rebar 12 mm")
    as_user(client, people["seller"])
    r = client.get(f"/deals/{deal['id']}")
    assert r.status_code == 200
    ids = ids_on(r.text)
    for testid in ("listing-snapshot", "offer-history", "message-list", "trust-profile",
                   "fees", "task-card", "action-counter", "action-accept", "action-reject",
                   "submit-counter", "bell-count", "live-status", "audit-link"):  # fmt: skip
        assert testid in ids, testid
    assert r.text.count('data-testid="trust-profile"') == 2
    assert "Steel rebar 12 mm" in r.text
    assert "SAR\u00a045.00" in r.text
    assert "SAR\u00a022,500.00" in r.text
    assert "Your move" in r.text
    assert f'name="expected_version" value="{deal["version"]}"' in r.text
    assert f'data-last-seq="{1}"' in r.text
    for name in ("unit_price", "quantity", "lead_time_days", "delivery_terms", "valid_until",
                 "discount_percent", "notes", "message", "reason"):  # fmt: skip
        assert f'name="{name}"' in r.text, name


def test_the_room_notes_when_the_live_listing_changed_since_the_deal_opened(
    client: TestClient, people: dict[str, Person], clock: TestClock
) -> None:
    deal = market_deal(client, people)
    as_user(client, people["buyer"])
    assert "listing-changed" not in ids_on(client.get(f"/deals/{deal['id']}").text)
    clock.advance(minutes=5)
    r = client.patch(f"/v1/listings/{deal['listing_id']}", json={"unit_price": "55.00"},
                     headers=people["seller"].headers)  # fmt: skip
    assert r.status_code == 200, r.text
    page = client.get(f"/deals/{deal['id']}").text
    assert "listing-changed" in ids_on(page)
    assert "SAR\u00a050.00" in page  # the frozen price stays


def test_a_counter_sent_from_the_form_moves_the_deal_and_returns_to_the_room(
    client: TestClient, people: dict[str, Person]
) -> None:
    deal = market_deal(client, people)
    as_user(client, people["seller"])
    page = client.get(f"/deals/{deal['id']}").text
    r = client.post(
        f"/deals/{deal['id']}/transitions/counter",
        data={"csrf": csrf_of(page), "expected_version": str(deal["version"]),
              "unit_price": "47.50", "quantity": "500", "lead_time_days": "5",
              "message": "Meet in the middle"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/deals/{deal['id']}"
    room = client.get(r.headers["location"]).text
    assert 'data-key="v2"' in room
    assert "Price increased 5.56%, lead time set to 5 days" in room
    assert 'data-testid="quote-diff"' in room
    api = client.get(f"/v1/deals/{deal['id']}", headers=people["seller"].headers).json()
    assert api["current_quote"]["unit_price"] == "47.50"
    assert api["current_quote"]["lead_time_days"] == 5


def test_a_refused_counter_is_shown_next_to_its_field_with_what_was_typed(
    client: TestClient, people: dict[str, Person]
) -> None:
    deal = market_deal(client, people)
    as_user(client, people["seller"])
    token = csrf_of(client.get(f"/deals/{deal['id']}").text)
    form = {"csrf": token, "expected_version": str(deal["version"]), "unit_price": "45.09",
            "delivery_terms": "DAP Riyadh", "message": "Final offer"}  # fmt: skip
    r = client.post(f"/deals/{deal['id']}/transitions/counter", data=form)
    assert r.status_code == 422
    assert re.search(r'<details class="action[^"]*" data-action="counter" open>', r.text)
    error = re.search(r'data-error-for="unit_price"\s*>([^<]+)<', r.text)
    assert error
    assert "at least 1%" in error[1]
    assert 'value="45.09"' in r.text
    assert 'value="DAP Riyadh"' in r.text
    assert "Final offer" in r.text
    assert 'data-key="v2"' not in r.text

    # The page's script gets the same refusal as JSON, field by field.
    answer = client.post(f"/deals/{deal['id']}/transitions/counter", data=form, headers=SCRIPT)
    assert answer.status_code == 422
    body = answer.json()
    assert body["ok"] is False
    assert body["code"] == "NEG-003"
    assert "at least 1%" in body["fields"]["unit_price"]


def test_a_move_on_a_stale_version_says_so_and_changes_nothing(
    client: TestClient, people: dict[str, Person]
) -> None:
    deal = market_deal(client, people)
    as_user(client, people["seller"])
    token = csrf_of(client.get(f"/deals/{deal['id']}").text)
    r = client.post(
        f"/deals/{deal['id']}/transitions/accept",
        data={"csrf": token, "expected_version": str(deal["version"] - 1)},
        headers=SCRIPT,
    )
    assert r.status_code == 409
    assert r.json()["code"] == "NEG-004"
    assert r.json()["current_version"] == deal["version"]
    api = client.get(f"/v1/deals/{deal['id']}", headers=people["seller"].headers).json()
    assert api["state"] == "offer-pending"


def test_forms_need_the_sessions_csrf_token_and_a_same_site_origin(
    client: TestClient, people: dict[str, Person]
) -> None:
    deal = market_deal(client, people)
    as_user(client, people["seller"])
    token = csrf_of(client.get(f"/deals/{deal['id']}").text)
    url = f"/deals/{deal['id']}/transitions/accept"
    body = {"expected_version": str(deal["version"])}
    assert client.post(url, data=body).status_code == 403
    assert client.post(url, data={**body, "csrf": token},
                       headers={"Origin": "https://evil.example"}).status_code == 403  # fmt: skip
    # The buyer's token is not the seller's.
    as_user(client, people["buyer"])
    buyer_token = csrf_of(client.get(f"/deals/{deal['id']}").text)
    assert buyer_token != token
    as_user(client, people["seller"])
    assert client.post(url, data={**body, "csrf": buyer_token}).status_code == 403
    ok = client.post(url, data={**body, "csrf": token},
                     headers={"Origin": "http://testserver"}, follow_redirects=False)  # fmt: skip
    assert ok.status_code == 303


def test_a_full_market_deal_closes_through_the_forms_with_the_handoff_on_the_task_card(
    client: TestClient, people: dict[str, Person]
) -> None:
    deal = market_deal(client, people)
    version = deal["version"]

    def fire(who: Person, name: str, **data: str) -> str:
        nonlocal version
        as_user(client, who)
        token = csrf_of(client.get(f"/deals/{deal['id']}").text)
        r = client.post(f"/deals/{deal['id']}/transitions/{name}",
                        data={"csrf": token, "expected_version": str(version), **data},
                        follow_redirects=False)  # fmt: skip
        assert r.status_code == 303, r.text
        version += 1
        return client.get(r.headers["location"]).text

    fire(people["seller"], "accept")
    fire(people["seller"], "request-close")
    room = fire(people["buyer"], "confirm-close")
    assert re.search(r'data-testid="order-ref">ORD-\d{4}-\d{4}<', room)
    assert "Open — waiting for the buyer" in room
    assert "awaiting pickup" in room
    assert "Fund escrow" in room
    assert "SAR\u00a0562.50" in room  # the 2.5% platform fee of SAR 22,500.00, beside it


def test_messages_post_from_the_room_and_an_empty_one_is_refused_in_place(
    client: TestClient, people: dict[str, Person]
) -> None:
    deal = market_deal(client, people)
    as_user(client, people["buyer"])
    token = csrf_of(client.get(f"/deals/{deal['id']}").text)
    r = client.post(f"/deals/{deal['id']}/messages", data={"csrf": token, "body": "Hello <b>"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    page = client.get(f"/deals/{deal['id']}").text
    assert "Hello &lt;b&gt;" in page  # escaped, never markup
    empty = client.post(f"/deals/{deal['id']}/messages", data={"csrf": token, "body": "  "})
    assert empty.status_code == 422
    assert "A message needs some text." in empty.text


def test_someone_elses_deal_is_a_friendly_404_page_while_the_api_keeps_problem_json(
    client: TestClient, people: dict[str, Person]
) -> None:
    deal = market_deal(client, people)
    as_user(client, people["other"])
    r = client.get(f"/deals/{deal['id']}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "Page not found" in r.text
    assert "NEG-011" not in r.text
    assert "Traceback" not in r.text
    api = client.get("/v1/deals/nope", headers=people["other"].headers)
    assert api.headers["content-type"].startswith("application/problem+json")
    page = client.get("/no/such/page")
    assert page.status_code == 404
    assert "Page not found" in page.text
    assert client.get("/v1/no/such").headers["content-type"].startswith("application/problem")


def test_an_unexpected_failure_is_a_friendly_500_page(
    client: TestClient, people: dict[str, Person], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dealroom.web import routes_pages

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(routes_pages.queries, "deal_rows", boom)
    as_user(client, people["buyer"])
    r = client.get("/deals")
    assert r.status_code == 500
    assert "Something went wrong on our side" in r.text
    assert "secret internals" not in r.text
    assert "Traceback" not in r.text


# --- lists, the bell, operators, the audit timeline ----------------------------------------


def test_my_deals_splits_buying_from_selling_and_filters_by_state_and_process(
    client: TestClient, people: dict[str, Person]
) -> None:
    deal = market_deal(client, people, title="Copper cable")
    as_user(client, people["seller"])
    selling = client.get("/deals?view=selling").text
    assert "Copper cable" in selling
    assert "Your move" in selling
    assert "Copper cable" not in client.get("/deals?view=buying").text
    assert "Copper cable" in client.get("/deals?view=selling&state=offer-pending").text
    assert "Copper cable" not in client.get("/deals?view=selling&state=closed-won").text
    assert "Copper cable" not in client.get("/deals?view=selling&process=rfq").text
    as_user(client, people["buyer"])
    buying = client.get("/deals").text
    assert deal["ref"] in buying
    assert "SAR\u00a045.00 × 500" in buying


def test_the_bell_page_lists_notifications_and_marks_them_read(
    client: TestClient, people: dict[str, Person]
) -> None:
    market_deal(client, people)
    as_user(client, people["seller"])
    page = client.get("/notifications").text
    assert re.search(r'data-testid="bell-count" data-count="1">1<', page)
    assert "Offer made" in page
    r = client.post("/notifications/read", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303
    assert re.search(r'data-testid="bell-count" data-count="0">0<', client.get("/").text)


def test_the_operator_console_is_for_staff_only(
    client: TestClient, people: dict[str, Person]
) -> None:
    deal = market_deal(client, people)
    as_user(client, people["operator"])
    r = client.get("/operator")
    assert r.status_code == 200
    assert deal["ref"] in r.text
    assert "operator-table" in ids_on(r.text)
    room = client.get(f"/deals/{deal['id']}")
    assert room.status_code == 200
    assert "Operator view" in room.text
    as_user(client, people["buyer"])
    refused = client.get("/operator")
    assert refused.status_code == 403
    assert "Operators only" in refused.text


def test_the_audit_timeline_verifies_the_chain_and_offers_the_exports(
    client: TestClient, people: dict[str, Person], db: Database
) -> None:
    deal = market_deal(client, people)
    as_user(client, people["buyer"])
    r = client.get(f"/deals/{deal['id']}/audit")
    assert r.status_code == 200
    assert 'data-valid="true"' in r.text
    assert "OFFER_MADE" in r.text
    assert "Buyer: Acme Corp" in r.text
    assert f"/v1/deals/{deal['id']}/audit/export?format=json" in r.text
    assert f"/v1/deals/{deal['id']}/audit/export?format=csv" in r.text
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| OFFER_MADE\s+\| Buyer: Acme Corp", r.text)
    # The export links work with the page's session cookie.
    csv = client.get(f"/v1/deals/{deal['id']}/audit/export?format=csv")
    assert csv.status_code == 200
    assert "OFFER_MADE" in csv.text
    with session_scope(db) as s:  # tamper with the record
        s.execute(update(m.Event).where(m.Event.deal_id == deal["id"]).values(type="FORGED"))
    assert 'data-valid="false"' in client.get(f"/deals/{deal['id']}/audit").text


def test_numbers_and_times_follow_the_viewers_locale_and_timezone(
    client: TestClient, people: dict[str, Person], db: Database
) -> None:
    deal = market_deal(client, people)
    with session_scope(db) as s:
        s.execute(update(m.User).where(m.User.id == people["buyer"].id)
                  .values(locale="de_DE", timezone="Asia/Riyadh"))  # fmt: skip
    as_user(client, people["buyer"])
    page = client.get(f"/deals/{deal['id']}").text
    assert "22.500,00\u00a0SAR" in page  # German grouping, the currency after the amount
    assert "Asia/Riyadh" in page
    assert "01.02.2026, 12:00" in page  # 09:00 UTC is noon in Riyadh
    assert 'lang="de-DE"' in page


def test_a_request_for_quote_runs_to_an_order_through_the_forms(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"], process="rfq", min_order_qty=100)
    as_user(client, people["buyer"])
    page = client.get(f"/listings/{listing['id']}").text
    r = client.post(
        f"/listings/{listing['id']}/deals",
        data={"csrf": csrf_of(page), "transition": "request-quote", "quantity": "500",
              "message": "Need these for Q2 production"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303, r.text
    room_url = r.headers["location"]
    deal_id = room_url.rsplit("/", 1)[1]

    as_user(client, people["seller"])
    room = client.get(room_url).text
    assert "action-send-quote" in ids_on(room)
    assert re.search(r'name="quantity" value="500"', room)  # what the buyer asked for
    r = client.post(
        f"/deals/{deal_id}/transitions/send-quote",
        data={"csrf": csrf_of(room), "expected_version": "1", "unit_price": "48.00",
              "quantity": "500", "lead_time_days": "5", "delivery_terms": "DAP Riyadh"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303, r.text

    as_user(client, people["buyer"])
    room = client.get(room_url).text
    r = client.post(f"/deals/{deal_id}/transitions/accept",
                    data={"csrf": csrf_of(room), "expected_version": "2"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    room = client.get(room_url).text
    assert re.search(r'data-testid="order-ref">ORD-\d{4}-\d{4}<', room)
    assert "SAR\u00a024,000.00" in room


def test_an_operator_records_an_auction_win_from_the_listing_page(
    client: TestClient, people: dict[str, Person]
) -> None:
    listing = make_listing(client, people["seller"], sale_mode="auction", quantity=2)
    as_user(client, people["operator"])
    page = client.get(f"/listings/{listing['id']}").text
    assert "action-win-auction" in ids_on(page)
    form = {"csrf": csrf_of(page), "transition": "win-auction", "unit_price": "61.00",
            "quantity": "2"}  # fmt: skip
    unknown = client.post(f"/listings/{listing['id']}/deals",
                          data={**form, "buyer_email": "nobody@nowhere.example"})  # fmt: skip
    assert unknown.status_code == 422
    assert "No user has this email address." in unknown.text
    r = client.post(f"/listings/{listing['id']}/deals",
                    data={**form, "buyer_email": "buyer@acme.example"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    as_user(client, people["buyer"])
    room = client.get(r.headers["location"]).text
    assert "Closed won" in room
    assert "SAR\u00a0122.00" in room

"""A buyer and a seller, each in a browser of their own, negotiating through the pages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from livesite import Cast, LiveServer, add_listing, sign_in, start_server


def make_offer(page: Any, listing_id: str, *, price: str, quantity: str, message: str) -> str:
    """The buyer opens a market deal from the listing page; answers the deal room's URL."""
    page.goto(f"/listings/{listing_id}")
    page.click("[data-testid=action-make-offer]")
    form = page.locator("details[data-action=make-offer] form")
    form.locator("[name=unit_price]").fill(price)
    form.locator("[name=quantity]").fill(quantity)
    form.locator("[name=message]").fill(message)
    form.locator("[data-testid=submit-make-offer]").click()
    page.wait_for_url(re.compile(r"/deals/[0-9a-f-]{36}$"))
    expect(page.locator("[data-testid=live-status]")).to_have_attribute("data-state", "live")
    return str(page.url)


def move(page: Any, name: str, **fields: str) -> None:
    """Open the action's form, fill it, send it."""
    page.click(f"[data-testid=action-{name}]")
    form = page.locator(f"details[data-action={name}] form")
    for field, value in fields.items():
        form.locator(f"[name={field}]").fill(value)
    form.locator(f"[data-testid=submit-{name}]").click()


def open_room(page: Any, url: str) -> None:
    page.goto(url)
    expect(page.locator("[data-testid=live-status]")).to_have_attribute("data-state", "live")


def snap(page: Any, path: Path, *, full_page: bool = True, keep_highlight: bool = False) -> None:
    """A screenshot without the passing toasts (and, unless asked, the live highlight)."""
    page.evaluate(
        "keep => { document.querySelectorAll('.toast').forEach(t => t.remove());"
        " if (!keep) document.querySelectorAll('.is-new').forEach(e => e.classList.remove('is-new')); }",
        keep_highlight,
    )
    if full_page:
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=full_page)


def no_script_errors(*pages: Any) -> None:
    for page in pages:
        assert page.errors == [], page.errors


def test_the_sellers_counter_reaches_the_buyers_page_live_and_the_bell_counts_up(
    live_server: LiveServer, cast: Cast, new_page: Any, shots: Path
) -> None:
    listing = add_listing(live_server.db, cast.seller)
    buyer = new_page()
    sign_in(buyer, cast.buyer)
    deal_url = make_offer(buyer, listing, price="395.00", quantity="50",
                          message="For our new Dubai office")  # fmt: skip
    bell = buyer.locator("[data-testid=bell-count]")
    before = int(bell.text_content() or "0")
    buyer.evaluate("window.__sameDocument = true")

    seller = new_page()
    sign_in(seller, cast.seller)
    open_room(seller, deal_url)
    move(seller, "counter", unit_price="410.00", lead_time_days="7",
         message="Best we can do with 7-day delivery")  # fmt: skip
    expect(seller.locator("[data-testid=offer-history] [data-key=v2]")).to_be_visible()

    # The buyer's page shows it without a reload, highlighted, and the bell counts up.
    v2 = buyer.locator("[data-testid=offer-history] [data-key=v2]")
    expect(v2).to_contain_text("$410.00")
    expect(v2).to_contain_text("Price increased 3.8%")
    expect(v2).to_have_class(re.compile(r"\bis-new\b"))
    expect(bell).to_have_text(str(before + 1))
    expect(buyer.locator("[data-testid=task-card]")).to_contain_text("Your move")
    expect(buyer.locator("[data-testid=action-accept]")).to_be_visible()
    assert buyer.evaluate("window.__sameDocument") is True
    no_script_errors(buyer, seller)

    v2.scroll_into_view_if_needed()
    snap(buyer, shots / "deal-room-live-update.png", full_page=False, keep_highlight=True)
    snap(buyer, shots / "deal-room.png")

    phone = new_page(width=390, height=844)
    sign_in(phone, cast.buyer)
    open_room(phone, deal_url)
    snap(phone, shots / "deal-room-phone.png", full_page=False)
    phone.locator("[data-testid=offer-history]").scroll_into_view_if_needed()
    snap(phone, shots / "deal-room-phone-history.png", full_page=False)
    no_script_errors(phone)


@pytest.mark.parametrize("script", [True, False], ids=["script", "no-script"])
def test_a_refused_counter_shows_the_rule_next_to_the_field_and_keeps_what_was_typed(
    script: bool, live_server: LiveServer, cast: Cast, new_page: Any, shots: Path
) -> None:
    listing = add_listing(live_server.db, cast.seller, title="Steel rebar 12 mm, per tonne",
                          currency="SAR", unit_price="2450.00", quantity=300, min_order_qty=5,
                          category="construction", attributes={})  # fmt: skip
    buyer = new_page()
    sign_in(buyer, cast.buyer)
    deal_url = make_offer(buyer, listing, price="2300.00", quantity="40",
                          message="Site delivery to Riyadh north")  # fmt: skip

    seller = new_page(js=script, height=1500)  # tall: the open form fits the picture
    sign_in(seller, cast.seller)
    seller.goto(deal_url)
    if script:
        seller.evaluate("window.__sameDocument = true")
        # Keyboard: the action opens from its button and puts the cursor in the form.
        seller.focus("[data-testid=action-counter]")
        seller.keyboard.press("Enter")
        expect(seller.locator("details[data-action=counter] [name=unit_price]")).to_be_focused()
    else:
        seller.click("[data-testid=action-counter]")
    form = seller.locator("details[data-action=counter] form")
    # 2,304.60 is 0.2% above 2,300.00: under the 1% a counter must move the price (CTR-002).
    form.locator("[name=unit_price]").fill("2304.60")
    form.locator("[name=delivery_terms]").fill("DAP Riyadh")
    form.locator("[name=message]").fill("Includes delivery to site")
    form.locator("[data-testid=submit-counter]").click()

    form = seller.locator("details[data-action=counter] form")
    reason = form.locator("[data-error-for=unit_price]")
    expect(reason).to_be_visible()
    expect(reason).to_contain_text("at least 1%")
    expect(form.locator("[name=unit_price]")).to_have_value("2304.60")
    expect(form.locator("[name=unit_price]")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("[name=delivery_terms]")).to_have_value("DAP Riyadh")
    expect(form.locator("[name=message]")).to_have_value("Includes delivery to site")
    expect(form.locator("[data-form-error]")).to_contain_text("Terms refused")
    expect(seller.locator("[data-testid=offer-history] [data-key=v2]")).to_have_count(0)
    if script:
        assert seller.evaluate("window.__sameDocument") is True
        no_script_errors(seller)
        seller.locator("[data-testid=task-card]").screenshot(
            path=str(shots / "refused-counter.png")
        )
    else:
        # Corrected and sent again, the same form goes through.
        form.locator("[name=unit_price]").fill("2390.00")
        form.locator("[data-testid=submit-counter]").click()
        expect(seller.locator("[data-testid=offer-history] [data-key=v2]")).to_contain_text(
            "SAR\u00a02,390.00"
        )
    no_script_errors(buyer)


def test_a_market_deal_reaches_closed_won_through_the_pages_alone(
    live_server: LiveServer, cast: Cast, new_page: Any, shots: Path, catalogue: list[str]
) -> None:
    listing = add_listing(live_server.db, cast.seller)
    buyer = new_page()
    sign_in(buyer, cast.buyer)
    deal_url = make_offer(buyer, listing, price="405.00", quantity="30",
                          message="Thirty units for the new Dubai office")  # fmt: skip
    seller = new_page()
    sign_in(seller, cast.seller)
    open_room(seller, deal_url)

    move(seller, "accept", message="Agreed, thank you")
    expect(buyer.locator("[data-testid=deal-state]")).to_have_text("Terms agreed")
    move(seller, "request-close")
    expect(buyer.locator("[data-testid=action-confirm-close]")).to_be_visible()
    move(buyer, "confirm-close")

    for page in (buyer, seller):
        card = page.locator("[data-testid=task-card]")
        expect(page.locator("[data-testid=deal-state]")).to_have_text("Closed won")
        expect(card.locator("[data-testid=order-ref]")).to_have_text(
            re.compile(r"^ORD-\d{4}-\d{4}$")
        )
        expect(card).to_contain_text("$12,150.00")
        expect(card.locator("[data-testid=escrow-status]")).to_contain_text("Open")
        expect(card.locator("[data-testid=shipment-status]")).to_contain_text("awaiting pickup")
        expect(card).to_contain_text("Fund escrow")
    expect(buyer.locator("[data-testid=fees]")).to_contain_text("$303.75")
    no_script_errors(buyer, seller)
    snap(buyer, shots / "deal-room-closed.png", full_page=False)

    # The audit trail: verified, exportable, laid out as the rfq reference's timeline.
    buyer.click("[data-testid=audit-link]")
    expect(buyer.locator("[data-testid=audit-verification]")).to_have_attribute(
        "data-valid", "true"
    )
    timeline = buyer.locator("[data-testid=audit-timeline]")
    for kind in ("OFFER_MADE", "QUOTE_ACCEPTED", "CLOSE_REQUESTED", "DEAL_CLOSED",
                 "ORDER_CREATED"):  # fmt: skip
        expect(timeline).to_contain_text(kind)
    expect(timeline).to_contain_text("Buyer: Acme Corp")
    with buyer.expect_download() as download:
        buyer.click("[data-testid=export-csv]")
    assert download.value.suggested_filename.endswith("-audit.csv")
    snap(buyer, shots / "audit-timeline.png")

    # The seller's view of their deals, and the listings.
    seller.goto("/deals?view=selling")
    expect(seller.locator("[data-testid=deal-table]")).to_be_visible()
    snap(seller, shots / "my-deals.png")
    buyer.goto("/listings")
    expect(buyer.locator("[data-testid=listing-card]").first).to_be_visible()
    snap(buyer, shots / "listings.png", full_page=False)
    no_script_errors(buyer, seller)


def test_messages_are_sent_without_leaving_the_page_and_arrive_live(
    live_server: LiveServer, cast: Cast, new_page: Any
) -> None:
    listing = add_listing(live_server.db, cast.seller)
    buyer = new_page()
    sign_in(buyer, cast.buyer)
    deal_url = make_offer(buyer, listing, price="400.00", quantity="20", message="Twenty units")
    seller = new_page()
    sign_in(seller, cast.seller)
    open_room(seller, deal_url)
    buyer.evaluate("window.__sameDocument = true")

    buyer.fill("[data-testid=message-input]", "Can you ship to Jebel Ali by the 20th?")
    buyer.click("[data-testid=send-message]")
    expect(buyer.locator("[data-testid=message-list]")).to_contain_text("Jebel Ali by the 20th")
    expect(buyer.locator("[data-testid=message-input]")).to_have_value("")
    expect(seller.locator("[data-testid=message-list]")).to_contain_text("Jebel Ali by the 20th")
    expect(seller.locator("[data-testid=message-list] .is-new")).to_have_count(1)

    # An empty message is refused next to the box, and nothing is sent.
    buyer.click("[data-testid=send-message]")
    expect(buyer.locator("[data-error-for=body]")).to_contain_text("needs some text")
    assert buyer.evaluate("window.__sameDocument") is True
    no_script_errors(buyer, seller)


def test_the_deal_room_resumes_after_a_dropped_connection(
    live_server: LiveServer, cast: Cast, new_page: Any
) -> None:
    """The buyer's page is served by a second server that goes away and comes back; the
    counter made meanwhile reaches the page through Last-Event-ID."""
    listing = add_listing(live_server.db, cast.seller)
    other = start_server(live_server.db)
    try:
        buyer = new_page()
        sign_in(buyer, cast.buyer)
        deal_url = make_offer(buyer, listing, price="400.00", quantity="25", message="Offer")
        room_path = deal_url.removeprefix(live_server.url)
        buyer.goto(other.url + room_path)
        status = buyer.locator("[data-testid=live-status]")
        expect(status).to_have_attribute("data-state", "live")
        buyer.evaluate("window.__sameDocument = true")

        port = int(other.url.rsplit(":", 1)[1])
        other.stop()
        expect(status).to_have_attribute("data-state", "reconnecting")

        seller = new_page()
        sign_in(seller, cast.seller)
        open_room(seller, deal_url)
        move(seller, "counter", unit_price="415.00", message="Our best price for 25")
        expect(seller.locator("[data-testid=offer-history] [data-key=v2]")).to_be_visible()

        other = start_server(live_server.db, port=port)
        expect(status).to_have_attribute("data-state", "live", timeout=15_000)
        expect(buyer.locator("[data-testid=offer-history] [data-key=v2]")).to_contain_text(
            "$415.00"
        )
        assert buyer.evaluate("window.__sameDocument") is True
        no_script_errors(buyer, seller)
    finally:
        other.stop()


def test_pages_read_well_signed_out(
    live_server: LiveServer, new_page: Any, shots: Path, catalogue: list[str]
) -> None:
    page = new_page()
    page.goto("/")
    expect(page.locator("h1")).to_contain_text("Negotiate with receipts")
    page.goto("/login")
    page.fill("#email", "nobody@nowhere.example")
    page.fill("#password", "wrong password")
    page.click("[data-testid=login-submit]")
    expect(page.locator("[data-testid=login-error]")).to_contain_text("Wrong email or password")
    expect(page.locator("#email")).to_have_value("nobody@nowhere.example")
    page.goto("/login")
    page.screenshot(path=str(shots / "login.png"), full_page=False)
    page.goto("/deals/00000000-0000-0000-0000-000000000000")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    response = page.goto("/no/such/page")
    assert response is not None
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Page not found")
    no_script_errors(page)

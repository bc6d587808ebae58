"""What each action of a transition does, as a table.

A transition lists its actions by name (`actions = ["counter"]`); `ACTIONS` maps every
name the engine knows to a small function that adds to the `Move` being built: a quote
version, a version's status, a note in the deal's data, an effect for an adapter. A
namespaced action (`payment:…`, `booking:…`, `stock:…`, `effect:…`) has no entry: it is
handed to its adapter as an effect, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

from dealroom.domain import rules
from dealroom.domain.errors import AlreadyAccepted, InvalidTransition, NotAuthorized
from dealroom.domain.model import PARTIES, Transition
from dealroom.domain.quotes import QuoteVersion, accepted_version, change_from, pending_version
from dealroom.domain.state import Actor, DealState, Effect, EventDraft, Payload
from dealroom.domain.timestamps import iso

EFFECT_NAMESPACES = ("payment:", "booking:", "stock:", "effect:")
VERSION_ACTIONS = frozenset({"propose", "counter", "revise", "set-line-items"})
#: Sharetribe booking actions whose `booking` data the time expressions read later.
BOOKING_WRITES = frozenset(
    {
        "booking:create-pending-booking",
        "booking:create-proposed-booking",
        "booking:create-booking",
        "booking:update-booking",
    }
)


@dataclass
class Move:
    """One firing as its actions see it: what was asked, and what they have built so far."""

    deal: DealState
    transition: Transition
    actor: Actor
    payload: Payload
    now: datetime
    versions: list[QuoteVersion]
    data: dict[str, Any]
    proposals: int
    new_version: QuoteVersion | None = None
    status_changes: list[tuple[int, str]] = field(default_factory=list)
    extra_events: list[EventDraft] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

    @property
    def pending(self) -> QuoteVersion | None:
        """The pending version as this move has left it so far."""
        return pending_version(self.versions)

    def set_status(self, number: int, status: str) -> None:
        i = number - 1
        self.versions[i] = self.versions[i].with_status(status)
        self.status_changes.append((number, status))

    def add_version(self, version: QuoteVersion) -> None:
        """Put `version` on the table as the one this move makes."""
        self.versions.append(version)
        self.new_version = version


Action = Callable[[Move], None]


def apply(move: Move, action: str) -> None:
    step = ACTIONS.get(action)
    if step is None:
        _adapter_effect(move, action)
    else:
        step(move)


def is_known_action(name: str) -> bool:
    return name in ACTIONS or name.startswith(EFFECT_NAMESPACES)


# --- quote versions ------------------------------------------------------------------------


def _new_version(action: str, move: Move) -> None:
    deal, t, actor, payload, now = move.deal, move.transition, move.actor, move.payload, move.now
    role = actor.role if actor.role in PARTIES else t.proposer
    if role is None:
        raise NotAuthorized("Only the buyer or the seller can propose terms.", rule="ACTOR")
    pending = deal.pending
    settings = deal.settings
    is_proposal = action != "revise" and not (
        action == "set-line-items" and pending and pending.created_by_role == role
    )
    if settings.counter_rules:
        rules.check_limits(deal, settings, counting=is_proposal)
    base = pending.terms if pending else (deal.current.terms if deal.current else None)
    if t.listing_price:
        asked = (payload.terms or {}).get("unit_price")
        if asked is not None and str(asked).strip() not in (
            str(deal.listing.unit_price),
            f"{deal.listing.unit_price:f}",
        ):
            raise rules.field_error(
                "unit_price",
                "BUY-NOW",
                f"'{t.name}' is at the listing's price, {deal.listing.unit_price} "
                f"{deal.listing.currency}; make an offer to propose another.",
            )
        payload = replace(
            payload, terms={**(payload.terms or {}), "unit_price": str(deal.listing.unit_price)}
        )
    terms = rules.build_terms(deal, payload, base=base, now=now, role=role)
    if settings.counter_rules:
        rules.check_counter_rules(action, deal, terms, payload, base)
    if settings.offer_rules and role == "buyer":
        rules.check_offer_rules(action, deal, terms, payload, actor, now)
        if deal.state is None:  # the opening offer's buyer details stay with the deal
            move.data["offer"] = {
                k: payload.data[k] for k in rules.OFFER_DETAIL_FIELDS if k in payload.data
            }

    own_previous = next((v for v in reversed(move.versions) if v.created_by_role == role), None)
    pct, lead = change_from(own_previous or pending, terms)
    if action == "revise" or (pending is not None and pending.created_by_role == role):
        reason = "seller_revision" if role == "seller" else "terms_change"
        if pending is not None:
            move.set_status(pending.number, "superseded")
    else:
        reason = (
            "initial"
            if not move.versions
            else ("buyer_counter" if role == "buyer" else "seller_revision")
        )
        if pending is not None:
            move.set_status(pending.number, "countered")
    version = QuoteVersion(
        number=len(move.versions) + 1,
        terms=terms,
        created_by_role=role,
        created_at=now,
        change_reason=reason,
        message=payload.message,
        price_change_pct=pct,
        lead_time_change_days=lead,
        is_proposal=is_proposal,
    )
    move.add_version(version)
    if is_proposal:
        move.proposals += 1


def _accept_quote(move: Move) -> None:
    deal = move.deal
    if deal.accepted is not None:
        raise AlreadyAccepted(
            f"Version {deal.accepted.number} is already accepted.", rule="NEG-V06"
        )
    target = move.pending
    if target is None:
        raise InvalidTransition("There is no pending quote to accept.", rule="STATE")
    move.set_status(target.number, "accepted")


def _end_pending(status: str, move: Move) -> None:
    target = move.pending
    if target is not None:
        move.set_status(target.number, status)


def _accept_update(move: Move) -> None:
    """The pending update simply becomes the offer on the table."""


def _restore_previous(move: Move) -> None:
    """Withdrawing a counter puts the other party's earlier offer back on the table."""
    target = move.deal.pending
    if target is None:
        return
    own = target.created_by_role == move.actor.role
    move.set_status(target.number, "withdrawn" if own else "rejected")
    earlier = next(
        (v for v in reversed(move.versions) if v.created_by_role != target.created_by_role),
        None,
    )
    if earlier is not None:
        restored = replace(
            earlier,
            number=len(move.versions) + 1,
            created_at=move.now,
            status="pending",
            change_reason="terms_change",
            message=move.payload.message,
            price_change_pct=None,
            lead_time_change_days=None,
            is_proposal=False,
        )
        move.add_version(restored)


# --- what follows an acceptance ------------------------------------------------------------


def _create_order(move: Move) -> None:
    accepted = accepted_version(move.versions) or move.deal.current
    if accepted is None:
        raise InvalidTransition("There are no terms to order.", rule="STATE")
    params = {
        "version": accepted.number,
        "total": str(accepted.terms.total),
        "currency": accepted.terms.currency,
    }
    move.effects.append(Effect("create-order", params))
    move.extra_events.append(EventDraft("ORDER_CREATED", "system", None, None, params))


def _open_escrow(move: Move) -> None:
    waived = bool(move.data.get("escrow_waived"))
    move.effects.append(Effect("open-escrow", {"waived": waived}))
    move.extra_events.append(
        EventDraft("ESCROW_WAIVED" if waived else "ESCROW_OPENED", "system", None, None, {})
    )


def _create_shipment(move: Move) -> None:
    move.effects.append(Effect("create-shipment"))
    move.extra_events.append(EventDraft("SHIPMENT_CREATED", "system", None, None, {}))


def _request_close(move: Move) -> None:
    waived = move.payload.data.get("escrow_waived", False)
    if not isinstance(waived, bool):
        raise rules.field_error("escrow_waived", "REQUEST", "escrow_waived must be true or false.")
    move.data["escrow_waived"] = waived


# --- notes in the deal's data --------------------------------------------------------------


def _open_request(move: Move) -> None:
    move.data["request"] = rules.parse_request(move.deal, move.payload)


def _request_info(move: Move) -> None:
    move.data["info_requested"] = {"at": iso(move.now), "message": move.payload.message}


def _merge_mapping(key: str, sent_as: str, move: Move) -> None:
    """Sharetribe's protectedData and metadata: what the move sends is merged in."""
    move.data[key] = {**move.data.get(key, {}), **rules.mapping_field(move.payload.data, sent_as)}


def _post_review(by: str, move: Move) -> None:
    reviews = dict(move.data.get("reviews", {}))
    reviews[by] = {
        **rules.parse_review(move.payload),
        "at": iso(move.now),
        "published": False,
    }
    move.data["reviews"] = reviews


def _publish_reviews(move: Move) -> None:
    move.data["reviews"] = {
        k: {**v, "published": True} for k, v in move.data.get("reviews", {}).items()
    }


def _adapter_effect(move: Move, action: str) -> None:
    """A namespaced action: its adapter gets the move's data; a booking's is kept too."""
    if action in BOOKING_WRITES:
        booking = move.payload.data.get("booking")
        if booking is not None:
            if not isinstance(booking, Mapping):
                raise rules.field_error(
                    "booking", "BOOKING", "booking must be an object with start and end."
                )
            move.data["booking"] = {**move.data.get("booking", {}), **booking}
    move.effects.append(Effect(action, dict(move.payload.data)))


#: The actions the engine knows by name; process files may use these and namespaced ones.
ACTIONS: Mapping[str, Action] = {
    # record the buyer's request (quantity, notes); not a quote version
    "open-request": _open_request,
    # a first quote version
    "propose": partial(_new_version, "propose"),
    # a counter-offer: new version, the pending one becomes `countered`
    "counter": partial(_new_version, "counter"),
    # the author replaces the pending version (it becomes `superseded`)
    "revise": partial(_new_version, "revise"),
    # Sharetribe line items: a new version, no counter rules
    "set-line-items": partial(_new_version, "set-line-items"),
    "accept-quote": _accept_quote,
    "reject-quote": partial(_end_pending, "rejected"),
    "withdraw-quote": partial(_end_pending, "withdrawn"),
    "expire-quote": partial(_end_pending, "expired"),
    # Sharetribe: the pending update becomes the current offer
    "accept-update": _accept_update,
    # Sharetribe: drop the pending counter, back to the offer before
    "restore-previous": _restore_previous,
    "create-order": _create_order,
    "open-escrow": _open_escrow,
    "create-shipment": _create_shipment,
    "request-close": _request_close,
    "request-info": _request_info,
    "update-protected-data": partial(_merge_mapping, "protected_data", "protectedData"),
    "update-metadata": partial(_merge_mapping, "metadata", "metadata"),
    "post-review-by-buyer": partial(_post_review, "buyer"),
    "post-review-by-seller": partial(_post_review, "seller"),
    "publish-reviews": _publish_reviews,
}

"""Who may fire a transition, and when: the refusals that come before any action runs.

The turn (the pending quote's author and counterparty), the roles a transition admits,
the deal's state and the listing's sale mode, the move quota, and the lapse of the quote
being answered. `available_transitions` applies the same checks, so a client is never
offered a move the engine would refuse for who or when.
"""

from __future__ import annotations

from datetime import datetime

from dealroom.domain.errors import (
    AlreadyAccepted,
    BuyerBlocked,
    InvalidTransition,
    MaxRoundsExceeded,
    NotAuthorized,
    QuoteExpired,
    RequestExpired,
)
from dealroom.domain.model import PARTIES, Process, Transition
from dealroom.domain.state import Actor, DealState

#: Moves that answer the pending quote; refused once it has lapsed (NEG-V05).
ANSWERING_ACTIONS = frozenset({"counter", "accept-quote"})


def _turn_roles(deal: DealState) -> dict[str, str]:
    pending = deal.pending
    if pending is None or pending.created_by_role not in PARTIES:
        return {}
    other = "seller" if pending.created_by_role == "buyer" else "buyer"
    return {"author": pending.created_by_role, "counterparty": other}


def permitted_roles(process: Process, deal: DealState, t: Transition) -> set[str]:
    """The concrete roles (buyer, seller, operator, system) that may fire `t` now."""
    roles = {a for a in t.actors if a in ("buyer", "seller", "operator", "system")}
    turn = _turn_roles(deal)
    roles |= {turn[a] for a in t.actors if a in turn}
    if t.name.startswith("operator-"):
        roles.add("operator")
    return roles


def check_actor(process: Process, deal: DealState, t: Transition, actor: Actor) -> None:
    """Refuse a blocked account, a deal with oneself, and a role `t` does not admit now;
    a party moving out of turn is told whose move it is."""
    if actor.blocked:
        raise BuyerBlocked(
            "Your account is blocked from negotiating; contact the marketplace's support.",
            rule="NEG-009",
        )
    if t.initial and deal.buyer_id is not None and deal.buyer_id == deal.seller_id:
        raise NotAuthorized("No one can negotiate with themselves.", rule="SELF-DEAL")
    roles = permitted_roles(process, deal, t)
    if actor.role in roles:
        return
    turn = _turn_roles(deal)
    if {"counterparty", "author"} & t.actors and turn and actor.role in PARTIES:
        whose = turn.get("counterparty") if "counterparty" in t.actors else turn.get("author")
        raise NotAuthorized(
            f"It is the {whose}'s move: only the party who "
            + (
                "did not make the pending quote can answer it."
                if "counterparty" in t.actors
                else "made the pending quote can change it."
            ),
            rule=t.actor_rule or "CTR-004",
            transition=t.name,
        )
    who = ", ".join(sorted(roles)) or "no one"
    raise NotAuthorized(
        f"'{t.name}' can be done by {who}, not by the {actor.role}.",
        rule=t.actor_rule or "ACTOR",
        transition=t.name,
    )


def check_state(process: Process, deal: DealState, t: Transition) -> None:
    """Refuse `t` where the listing's sale mode or the deal's state does not offer it; a
    closed deal says why it closed (accepted, lapsed, expired unanswered)."""
    if not _offered(deal, t):
        modes = " or ".join(m.replace("_", "-") for m in sorted(t.sale_modes))
        raise InvalidTransition(
            f"'{t.name}' is only offered on {modes} listings; this one is "
            f"{deal.listing.sale_mode.replace('_', '-')}.",
            rule="SALE-MODE",
            transition=t.name,
        )
    if deal.state is None:
        if not t.initial:
            starts = ", ".join(x.name for x in process.initial_transitions)
            raise InvalidTransition(
                f"A {process.name} deal starts with {starts}, not '{t.name}'.",
                rule="STATE",
                transition=t.name,
            )
        return
    if t.initial or deal.state not in t.src:
        if deal.state in process.final_states:
            if deal.accepted is not None:
                raise AlreadyAccepted(
                    f"Version {deal.accepted.number} was already accepted; the deal is "
                    f"{deal.state}.",
                    rule="NEG-V06",
                    state=deal.state,
                )
            last = deal.versions[-1] if deal.versions else None
            if last is not None and last.status == "expired":
                raise QuoteExpired(
                    f"The quote lapsed; the deal is {deal.state}. Start a new one.",
                    rule="NEG-V05",
                    state=deal.state,
                )
            if last is None and "expire" in (deal.last_transition or ""):
                raise RequestExpired(
                    "The request expired before a quote was sent.", rule="NEG-T01", state=deal.state
                )
        possible = [x.name for x in process.outgoing.get(deal.state, ())]
        raise InvalidTransition(
            f"'{t.name}' is not possible while the deal is {deal.state}"
            + (f"; possible now: {', '.join(possible)}." if possible else "; the deal is closed."),
            rule="STATE",
            state=deal.state,
            transition=t.name,
        )


def check_quota(process: Process, deal: DealState, t: Transition, dst: str) -> None:
    """Refuse a move past the deal's quota, or a looping one that would leave too few
    moves to reach a final state."""
    quota = deal.settings.transition_quota
    left = quota - deal.transition_count
    if left < 1:
        raise MaxRoundsExceeded(
            f"This deal has used all {quota} of its moves.", rule="QUOTA", limit=quota
        )
    needed = _moves_needed(process, t, dst)
    if needed > left:
        raise MaxRoundsExceeded(
            f"'{t.name}' would leave too few moves to finish the deal: {left} of {quota} "
            f"remain and finishing from {dst} needs {needed - 1} more.",
            rule="QUOTA",
            limit=quota,
            transitions_left=left,
        )


def available_transitions(process: Process, deal: DealState, role: str) -> list[str]:
    """What `role` may fire now (payload rules aside), in the process's order."""
    out = []
    for t in process.outgoing.get(deal.state, ()) if deal.state else process.initial_transitions:
        if t.actors == {"system"} or role not in permitted_roles(process, deal, t):
            continue
        if not _offered(deal, t):
            continue
        left = deal.settings.transition_quota - deal.transition_count
        if _moves_needed(process, t, t.destination(role)) > left:
            continue
        out.append(t.name)
    return out


def _offered(deal: DealState, t: Transition) -> bool:
    return not t.sale_modes or deal.listing.sale_mode in t.sale_modes


def _moves_needed(process: Process, t: Transition, dst: str) -> int:
    """The move itself, and for a looping one the moves to finish from where it lands,
    so a deal can never loop its quota away and be left unable to close."""
    return 1 + process.steps_to_final.get(dst, 0) if process.is_looping(t, dst) else 1


def check_answerable(deal: DealState, t: Transition, now: datetime) -> None:
    """Refuse an answer to a pending quote once it has lapsed (NEG-V05)."""
    pending = deal.pending
    if (
        ANSWERING_ACTIONS & set(t.actions)
        and pending is not None
        and pending.terms.valid_until is not None
        and now > pending.terms.valid_until
    ):
        raise QuoteExpired(
            f"Version {pending.number} was valid until "
            f"{pending.terms.valid_until:%Y-%m-%d %H:%M} UTC and can no longer be answered.",
            rule="NEG-V05",
            version=pending.number,
        )

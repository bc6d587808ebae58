"""Deal use cases: read a deal, open one, fire a transition, post a message.

One function per thing a user does. Each loads what it needs, asks the pure engine to
decide, and persists the outcome in the caller's transaction. Services flush, never commit.

- `read`: rows in the engine's terms, who the caller is in a deal, reading deals
- `moves`: open a deal, fire a transition (a user's or the system's)
- `persist`: writing a move (deal row, quote version, events, timers, hand-off rows)
- `messages`: messages in the deal room
- `trail`: a deal's audit trail as its readers get it (pages, the export)

This module is the package's face: it re-exports what callers use, so
`from dealroom.services import deals; deals.open_deal(...)` reads the same wherever it is
written. New code may import from the modules themselves.
"""

from dealroom.services.deals.messages import MAX_MESSAGE, list_messages, post_message
from dealroom.services.deals.moves import (
    fire_system,
    fire_transition,
    fire_transition_as,
    open_deal,
)
from dealroom.services.deals.persist import persist
from dealroom.services.deals.read import (
    DealResult,
    Surroundings,
    actor_for,
    count_by_state,
    engine_listing,
    engine_state,
    get_deal,
    get_deal_view,
    list_deals,
    load_versions,
    offer_counts,
    read_deal,
    role_in,
    settings_for,
    snapshot_of,
    version_of,
)

__all__ = [
    "MAX_MESSAGE",
    "DealResult",
    "Surroundings",
    "actor_for",
    "count_by_state",
    "engine_listing",
    "engine_state",
    "fire_system",
    "fire_transition",
    "fire_transition_as",
    "get_deal",
    "get_deal_view",
    "list_deals",
    "list_messages",
    "load_versions",
    "offer_counts",
    "open_deal",
    "persist",
    "post_message",
    "read_deal",
    "role_in",
    "settings_for",
    "snapshot_of",
    "version_of",
]

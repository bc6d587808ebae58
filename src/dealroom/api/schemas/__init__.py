"""The API's request bodies and answers (STYLE.md convention 9), one module per feature.

`XCreate` / `XUpdate` are inputs and forbid unknown fields (`base.Input`); `XRead` are
answers. Routes and tests take them from here (`from dealroom.api import schemas`), so a
shape can move between the modules without its importers changing.
"""

from __future__ import annotations

from dealroom.api.schemas.deals import (
    MAX_INT,
    DealCreate,
    DealListItem,
    DealPage,
    DealRead,
    EscrowRead,
    FeeRead,
    HandoffRead,
    NextStep,
    PartyRead,
    ProcessRef,
    ShipmentRead,
    TermsCreate,
    TransitionCreate,
)
from dealroom.api.schemas.events import (
    AuditVerification,
    EventPage,
    EventRead,
    FeedPage,
)
from dealroom.api.schemas.listings import (
    Kind,
    ListingCreate,
    ListingPage,
    ListingRead,
    ListingUpdate,
    SaleMode,
)
from dealroom.api.schemas.messages import MessageCreate, MessagePage, MessageRead
from dealroom.api.schemas.notifications import (
    NotificationPage,
    NotificationRead,
    NotificationsReadCreate,
    PreferencesRead,
    PreferencesUpdate,
    UnreadCountRead,
)
from dealroom.api.schemas.ops import HealthRead
from dealroom.api.schemas.problems import ProblemRead
from dealroom.api.schemas.processes import (
    ProcessCreate,
    ProcessList,
    ProcessNotificationRead,
    ProcessRead,
    ProcessTransitionRead,
    StateRead,
    TimerRead,
)
from dealroom.api.schemas.quotes import ChangeRead, QuoteDiff, QuoteList, QuoteRead, QuoteSummary
from dealroom.api.schemas.users import (
    PublicProfileRead,
    TokenCreate,
    TokenRead,
    TrustRead,
    UserCreate,
    UserRead,
)
from dealroom.api.schemas.webhooks import (
    DeliveryAttemptRead,
    DeliveryPage,
    DeliveryRead,
    DeliveryStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookRead,
)

__all__ = [
    "MAX_INT",
    "AuditVerification",
    "ChangeRead",
    "DealCreate",
    "DealListItem",
    "DealPage",
    "DealRead",
    "DeliveryAttemptRead",
    "DeliveryPage",
    "DeliveryRead",
    "DeliveryStatus",
    "EscrowRead",
    "EventPage",
    "EventRead",
    "FeeRead",
    "FeedPage",
    "HandoffRead",
    "HealthRead",
    "Kind",
    "ListingCreate",
    "ListingPage",
    "ListingRead",
    "ListingUpdate",
    "MessageCreate",
    "MessagePage",
    "MessageRead",
    "NextStep",
    "NotificationPage",
    "NotificationRead",
    "NotificationsReadCreate",
    "PartyRead",
    "PreferencesRead",
    "PreferencesUpdate",
    "ProblemRead",
    "ProcessCreate",
    "ProcessList",
    "ProcessNotificationRead",
    "ProcessRead",
    "ProcessRef",
    "ProcessTransitionRead",
    "PublicProfileRead",
    "QuoteDiff",
    "QuoteList",
    "QuoteRead",
    "QuoteSummary",
    "SaleMode",
    "ShipmentRead",
    "StateRead",
    "TermsCreate",
    "TimerRead",
    "TokenCreate",
    "TokenRead",
    "TransitionCreate",
    "TrustRead",
    "UnreadCountRead",
    "UserCreate",
    "UserRead",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookList",
    "WebhookRead",
]

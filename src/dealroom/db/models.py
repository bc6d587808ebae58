"""SQLAlchemy models: the tables of dealroom.

Portable on SQLite and PostgreSQL: exact decimals for money, enums as strings, JSON with a
JSONB variant, aware UTC datetimes, named constraints. Every deal-scoped table carries
`deal_id` and its hot queries filter on it (so the schema can shard by deal with Citus).
Quote versions and events are insert-only (a version's `status` is the one field that
moves); per-deal sequence numbers are unique.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
Money = Numeric(24, 6, asdecimal=True)
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on SQLite (which stores no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    organization: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSONType, default=list)
    kyc_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    plan: Mapped[str] = mapped_column(String(16), default="free")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    locale: Mapped[str] = mapped_column(String(16), default="en")
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Listing(Base):
    __tablename__ = "listings"
    __table_args__ = (Index("ix_listings_owner", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(8), default="sell")
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    unit_price: Mapped[Decimal] = mapped_column(Money)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    min_order_qty: Mapped[int | None] = mapped_column(Integer)
    max_order_qty: Mapped[int | None] = mapped_column(Integer)
    sale_mode: Mapped[str] = mapped_column(String(16), default="negotiable")
    process: Mapped[str] = mapped_column(String(64), default="market")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: Rule-setting overrides for deals on this listing (most specific but the deal's own).
    rules: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Deal(Base):
    __tablename__ = "deals"
    __table_args__ = (
        Index("ix_deals_buyer", "buyer_id", "updated_at"),
        Index("ix_deals_seller", "seller_id", "updated_at"),
        Index("ix_deals_listing", "listing_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    process_name: Mapped[str] = mapped_column(String(64))
    process_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(64))
    #: Optimistic concurrency: every write checks and bumps it (NEG-004 when stale).
    version: Mapped[int] = mapped_column(Integer, default=1)
    listing_id: Mapped[str] = mapped_column(ForeignKey("listings.id"))
    listing_snapshot: Mapped[dict[str, Any]] = mapped_column(JSONType)
    buyer_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    seller_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    initiated_by: Mapped[str] = mapped_column(String(8))
    proposals: Mapped[int] = mapped_column(Integer, default=0)
    transition_count: Mapped[int] = mapped_column(Integer, default=0)
    initiated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_move_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_mover: Mapped[str | None] = mapped_column(String(8))
    last_transition: Mapped[str | None] = mapped_column(String(100))
    #: {state: [first entered, last entered]} as ISO strings; Sharetribe timepoints read it.
    entered: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    first_transitioned: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: Deal-level rule overrides (the most specific layer).
    rules: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    head_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class QuoteVersion(Base):
    __tablename__ = "quote_versions"
    __table_args__ = (UniqueConstraint("deal_id", "number", name="uq_quote_versions_deal_number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"))
    number: Mapped[int] = mapped_column(Integer)
    created_by_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_by_role: Mapped[str] = mapped_column(String(8))
    unit_price: Mapped[Decimal] = mapped_column(Money)
    quantity: Mapped[int] = mapped_column(Integer)
    total_price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    discount_percent: Mapped[Decimal | None] = mapped_column(Numeric(9, 4))
    lead_time_days: Mapped[int | None] = mapped_column(Integer)
    delivery_terms: Mapped[str | None] = mapped_column(Text)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notes: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    change_reason: Mapped[str] = mapped_column(String(32))
    price_change_pct: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    lead_time_change_days: Mapped[int | None] = mapped_column(Integer)
    is_proposal: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_deal", "deal_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"))
    author_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Event(Base):
    """The audit record. `hash = SHA-256(prev_hash + canonical JSON of the event)`."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("deal_id", "seq", name="uq_events_deal_seq"),
        UniqueConstraint("feed_seq", name="uq_events_feed_seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"))
    seq: Mapped[int] = mapped_column(Integer)
    #: Position in the global feed, assigned in commit order (see services/events.py).
    feed_seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[str | None] = mapped_column(String(36))
    actor_type: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str | None] = mapped_column(String(64))
    to_state: Mapped[str | None] = mapped_column(String(64))
    #: Plain JSON (not JSONB) on purpose: the stored text is what was hashed.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Timer(Base):
    """A durable timer: fire a transition or send a reminder on a deal at a time."""

    __tablename__ = "timers"
    __table_args__ = (
        Index("ix_timers_due", "status", "due_at"),
        Index("ix_timers_deal", "deal_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"))
    kind: Mapped[str] = mapped_column(String(16))  # transition | notification
    name: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str | None] = mapped_column(String(32))
    event: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Notification(Base):
    """A bell item: one user told of one move or reminder, as a process's notification
    says. The table and the class keep the API's name for it (`/v1/me/notifications`); a
    queued email (immediate, or in a digest) may follow it."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user", "user_id", "read_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    deal_id: Mapped[str | None] = mapped_column(ForeignKey("deals.id"))
    name: Mapped[str] = mapped_column(String(100))
    template: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When it was first pushed to an open stream of its user (the digest skips those).
    seen_live_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("deal_id", name="uq_orders_deal_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"))
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    quote_version: Mapped[int] = mapped_column(Integer)
    total: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    fees: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Escrow(Base):
    __tablename__ = "escrows"
    __table_args__ = (UniqueConstraint("deal_id", name="uq_escrows_deal_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"))
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    status: Mapped[str] = mapped_column(String(16))  # open | waived | funded | released
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Shipment(Base):
    __tablename__ = "shipments"
    __table_args__ = (UniqueConstraint("deal_id", name="uq_shipments_deal_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"))
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    status: Mapped[str] = mapped_column(String(24), default="awaiting_pickup")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(400))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StoredProcess(Base):
    """A process imported at run time (dealroom's TOML, or converted from Sharetribe EDN)."""

    __tablename__ = "processes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_format: Mapped[str] = mapped_column(String(16))  # toml | edn
    definition: Mapped[str] = mapped_column(Text)  # dealroom TOML
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Counter(Base):
    """Human references (DEAL-2026-0042, ORD-2026-0089): one row per prefix and year."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class AppSecret(Base):
    """The token-signing key when DEALROOM_SECRET_KEY is not set: shared by every process."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


# --- email, digests and webhooks: what dealroom.notify delivers after commit ----------------


class UserPreference(Base):
    """How a user wants to hear about their deals. No row: the defaults (immediate email,
    digest hour 8, the user's own timezone)."""

    __tablename__ = "user_preferences"
    __table_args__ = (Index("ix_user_preferences_digest_due", "email", "next_digest_at"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    email: Mapped[str] = mapped_column(String(16), default="immediate")  # immediate|digest|off
    digest_hour: Mapped[int] = mapped_column(Integer, default=8)
    timezone: Mapped[str] = mapped_column(String(64))
    #: Bell items from this instant on go into digests (set on switching to `digest`).
    digest_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the next digest is due (UTC); the worker claims rows where it has passed.
    next_digest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QueuedEmail(Base):
    """A queued email: one per bell item of a user who wants immediate email (kind
    `notification`), or one digest per user and local day (kind `digest`).

    The worker claims due rows with `FOR UPDATE SKIP LOCKED`, renders and sends them, and
    marks them sent in the same transaction; a failure is retried with backoff. The table
    keeps its first name, `email_outbox`: renaming it would take a migration and gain
    nothing, and in the code "outbox" means only `UnitOfWork.outbox` (docs/adr/0006)."""

    __tablename__ = "email_outbox"
    __table_args__ = (
        Index("ix_email_outbox_due", "status", "next_attempt_at"),
        UniqueConstraint("notification_id", name="uq_email_outbox_notification_id"),
        UniqueConstraint("user_id", "digest_date", name="uq_email_outbox_user_digest_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))  # notification | digest
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id"))
    deal_id: Mapped[str | None] = mapped_column(String(36))
    #: The deal's last event when the bell item was recorded: the move it tells of.
    event_seq: Mapped[int | None] = mapped_column(Integer)
    #: The user's local date of a digest: at most one digest per user and day.
    digest_date: Mapped[date | None] = mapped_column(Date)
    #: pending | sent | failed | skipped (nothing left to send: the user or deal is gone)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    message_id: Mapped[str] = mapped_column(String(200))
    to_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(400))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    notification: Mapped[Notification | None] = relationship(lazy="raise")


class DigestItem(Base):
    """A bell item rolled into a digest; the key makes that happen at most once."""

    __tablename__ = "digest_items"
    __table_args__ = (Index("ix_digest_items_email", "email_id"),)

    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), primary_key=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("email_outbox.id"))
    deal_id: Mapped[str | None] = mapped_column(String(36))


class Webhook(Base):
    """An integrator's endpoint: signed deliveries of the events its filter names."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    secret: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    #: The last global feed position fanned out into deliveries for this endpoint.
    feed_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One event to one endpoint, with every attempt in `history`."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "feed_seq", name="uq_webhook_deliveries_webhook_feed_seq"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id"))
    deal_id: Mapped[str] = mapped_column(String(36))
    feed_seq: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(64))
    #: pending | delivered | failed | cancelled (the endpoint was deleted)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

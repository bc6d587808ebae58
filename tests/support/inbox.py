"""A real SMTP server for the email tests (aiosmtpd on 127.0.0.1), the configuration that
sends the services' mail to it, and the outbox the mail waits in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import select

from dealroom.config import Config
from dealroom.db import models as m
from dealroom.db.session import Database
from dealroom_harness.servers import free_port
from people import TEST_SECRET

BASE_URL = "https://deals.example.test"


def mail_config(smtp_url: str | None = None, **extra: Any) -> Config:
    return Config(
        database_url="unused", secret_key=TEST_SECRET, smtp_url=smtp_url, base_url=BASE_URL, **extra
    )


class Inbox:
    """An aiosmtpd handler that keeps every message; it refuses the addresses in `refuse`."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()
        self._lock = threading.Lock()

    async def handle_RCPT(  # noqa: N802  (aiosmtpd's hook names)
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        with self._lock:
            self.messages.append(msg)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [msg for msg in self.messages if address in str(msg["To"])]


class SmtpServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, ready_timeout=5
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


def running_smtp() -> Iterator[SmtpServer]:
    """The body of an `smtp` fixture (each test module declares its own)."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def body(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


def queued_emails(db: Database) -> list[m.QueuedEmail]:
    """Every email the services queued, oldest first."""
    with db.session(write=False) as s:
        return list(s.scalars(select(m.QueuedEmail).order_by(m.QueuedEmail.id)))

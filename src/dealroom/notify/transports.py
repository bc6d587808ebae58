"""Where email goes: an SMTP server, or a folder of .eml files.

Without `DEALROOM_SMTP_URL` the transport is a folder of .eml files (`DEALROOM_MAIL_DIR`,
default `./dealroom-data/mail`): embedded mode and the demo. An SMTP transport opens one
connection per worker pass, on the first email; a server that cannot be reached raises
`TransportDown`, which ends the pass (what is left is retried later).
"""

from __future__ import annotations

import contextlib
import os
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from dealroom.config import Config
from dealroom.services.notifications.email_queue import sender_domain

SMTP_TIMEOUT = 10.0


class Transport(Protocol):
    def send(self, msg: EmailMessage, *, name: str) -> None: ...

    def close(self) -> None: ...


class TransportDown(Exception):
    """The server could not be reached: stop this pass, retry the rest later."""


@dataclass
class SmtpTransport:
    """One connection per worker pass, opened on the first email."""

    url: str
    local_hostname: str = "localhost"
    timeout: float = SMTP_TIMEOUT
    _conn: smtplib.SMTP | None = field(default=None, init=False, repr=False)

    def _connect(self) -> smtplib.SMTP:
        parts = urlsplit(self.url)
        query = parse_qs(parts.query)
        host = parts.hostname or "localhost"
        context = ssl.create_default_context()
        conn: smtplib.SMTP
        try:
            if parts.scheme == "smtps":
                conn = smtplib.SMTP_SSL(host, parts.port or 465, local_hostname=self.local_hostname,
                                        timeout=self.timeout, context=context)  # fmt: skip
            else:
                conn = smtplib.SMTP(host, parts.port or 25, local_hostname=self.local_hostname,
                                    timeout=self.timeout)  # fmt: skip
                if query.get("starttls", ["0"])[0] in ("1", "true", "yes"):
                    conn.starttls(context=context)
            if parts.username:
                conn.login(unquote(parts.username), unquote(parts.password or ""))
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportDown(f"{host}:{parts.port}: {exc}") from exc
        return conn

    def send(self, msg: EmailMessage, *, name: str) -> None:
        if self._conn is None:
            self._conn = self._connect()
        try:
            self._conn.send_message(msg)
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise TransportDown(str(exc)) from exc
        except smtplib.SMTPException:
            raise  # the server answered about this message (SMTPException is an OSError)
        except OSError as exc:
            self._drop()
            raise TransportDown(str(exc)) from exc

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


@dataclass
class FolderTransport:
    """Embedded mode: each email becomes `<folder>/<name>.eml`, written atomically (a
    resend overwrites the same file rather than adding one)."""

    folder: Path

    def send(self, msg: EmailMessage, *, name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{name}.eml"
        tmp = target.with_suffix(".eml.tmp")
        tmp.write_bytes(msg.as_bytes())
        os.replace(tmp, target)

    def close(self) -> None:
        return None


def transport_for(config: Config) -> Transport | None:
    """SMTP when configured, else the mail folder; None when neither is (code that built
    its own Config without mail settings: emails stay queued)."""
    if config.smtp_url:
        return SmtpTransport(config.smtp_url, local_hostname=sender_domain(config))
    if config.mail_dir is not None:
        return FolderTransport(config.mail_dir)
    return None


def mail_destination(config: Config) -> str | None:
    """Where mail goes, for `dealroom demo` and `serve` to print."""
    if config.smtp_url:
        parts = urlsplit(config.smtp_url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or (465 if parts.scheme == 'smtps' else 25)}"
    if config.mail_dir is not None:
        return str(config.mail_dir.resolve())
    return None

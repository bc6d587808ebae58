"""Configuration from `DEALROOM_*` environment variables, read once per process."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

DEFAULT_SQLITE = "sqlite:///dealroom.db"

#: Platform fees by default: 2.5% of the accepted total, paid by the seller. A marketplace
#: overrides them with DEALROOM_FEES (JSON): {"default": [...], "process": {"market": [...]},
#: "category": {"laptops": [...]}}; the most specific list wins (category over process).
DEFAULT_FEES: dict[str, Any] = {
    "default": [{"name": "platform", "payer": "seller", "percent": "2.5"}],
    "process": {},
    "category": {},
}


@dataclass(frozen=True)
class Config:
    database_url: str = DEFAULT_SQLITE
    secret_key: str | None = None
    token_ttl_seconds: int = 12 * 3600
    fees: dict[str, Any] = field(default_factory=lambda: DEFAULT_FEES)
    #: Rule-setting overrides by category and seller (JSON): {"category": {"laptops":
    #: {"max_rounds": 3}}, "seller": {"<user id>": {...}}}. Listings and deals carry their own.
    rule_overrides: dict[str, Any] = field(default_factory=dict)
    base_url: str = "http://127.0.0.1:8000"
    echo_sql: bool = False
    #: Embedded mode: the server runs the worker loop itself (timers, email, webhooks).
    run_worker: bool = False
    #: Outgoing mail: `smtp://[user:pass@]host[:port]` (`?starttls=1` upgrades the
    #: connection), or `smtps://…` for implicit TLS. Unset: mail lands as .eml files in
    #: `mail_dir` (DEALROOM_MAIL_DIR, default ./dealroom-data/mail). A Config built in
    #: code with neither sends nothing: its emails stay queued.
    smtp_url: str | None = None
    email_from: str = "dealroom <no-reply@dealroom.localhost>"
    mail_dir: Path | None = None
    #: How old the trust profiles a deal shows may be (services/trust.cached_profiles);
    #: 0 computes them on every view. The profile page is always live.
    trust_cache_seconds: float = 60.0
    #: Write transactions one API process runs at once (0: no limit). More requests wait
    #: for a turn before they open a transaction, instead of holding one open while they
    #: queue for the interpreter lock (bench/api.py, 16 clients: 45 → ~110 transitions/s).
    write_concurrency: int = 2

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def normalize_url(url: str) -> str:
    """`postgresql://` selects psycopg 3, the driver dealroom ships with."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _json_env(name: str, default: Any) -> Any:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{name} is not valid JSON: {exc}") from exc


def from_env() -> Config:
    env = os.environ
    fees = _json_env("DEALROOM_FEES", DEFAULT_FEES)
    for entry in fees.get("default", []):
        Decimal(str(entry["percent"]))  # fail at start-up, not at the first order
    return Config(
        database_url=normalize_url(env.get("DEALROOM_DATABASE_URL", DEFAULT_SQLITE)),
        secret_key=env.get("DEALROOM_SECRET_KEY") or None,
        token_ttl_seconds=int(env.get("DEALROOM_TOKEN_TTL", 12 * 3600)),
        fees=fees,
        rule_overrides=_json_env("DEALROOM_RULES", {}),
        base_url=env.get("DEALROOM_BASE_URL", "http://127.0.0.1:8000"),
        echo_sql=env.get("DEALROOM_ECHO_SQL") == "1",
        run_worker=env.get("DEALROOM_EMBEDDED_WORKER") == "1",
        smtp_url=env.get("DEALROOM_SMTP_URL") or None,
        email_from=env.get("DEALROOM_EMAIL_FROM") or "dealroom <no-reply@dealroom.localhost>",
        mail_dir=Path(env.get("DEALROOM_MAIL_DIR", "dealroom-data/mail")),
        trust_cache_seconds=float(env.get("DEALROOM_TRUST_CACHE_SECONDS", 60)),
        write_concurrency=int(env.get("DEALROOM_WRITE_CONCURRENCY", 2)),
    )


@cache
def get_config() -> Config:
    return from_env()

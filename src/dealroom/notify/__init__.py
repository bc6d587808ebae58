"""Delivery after commit: email (at once, or in a morning digest) and webhooks.

Services queue the work inside the move's transaction (services/email_queue.py), or it
follows from what was committed (the feed, for webhooks; the digest hour). The worker
(worker.py) drains the queues (services/queues.py): each row claimed with
`FOR UPDATE SKIP LOCKED`, one transaction per row, sent while the row is locked and
marked done in that same transaction, so two workers never send the same item. A failed
send stays pending with `attempts` and `next_attempt_at` moved forward by the backoff
below, until a day has passed; then it is marked `failed`. Services never import this
package.

- `render.py`     what an email says: Jinja2 templates (text + HTML) and their context
- `transports.py` where it goes: an SMTP server, or a folder of .eml files (embedded mode)
- `email.py`      the send pass over queued emails
- `digest.py`     the morning summary: when it is due in the user's timezone, what goes in
- `webhooks.py`   fan-out of committed events into deliveries, signing and sending
"""

from __future__ import annotations

from datetime import datetime, timedelta

#: How long a failed email or webhook delivery keeps being retried.
RETRY_WINDOW = timedelta(days=1)


def retry_at(
    *,
    attempts: int,
    first_tried: datetime,
    now: datetime,
    base: timedelta,
    cap: timedelta,
    window: timedelta = RETRY_WINDOW,
) -> datetime | None:
    """When to try again after failed attempt number `attempts` (1, 2, …): `base` doubled
    per attempt up to `cap`, never past the end of the window, whose last attempt falls at
    its end. None once an attempt at or past the end of the window has failed."""
    deadline = first_tried + window
    if now >= deadline:
        return None
    delay = min(base * (1 << min(attempts - 1, 30)), cap)
    return min(now + delay, deadline)

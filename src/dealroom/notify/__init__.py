"""What leaves dealroom after commit: email (immediate or a daily digest) and webhooks.

Both are outboxes worked by the worker (worker.py): rows claimed with
`FOR UPDATE SKIP LOCKED`, one transaction per item, sent while the row is locked and
marked done in that same transaction, so two workers never send the same item. A failed
send stays pending with `attempts` and `next_attempt_at` moved forward by the backoff
below, until a day has passed; then it is marked `failed`.

- `email.py`   rendering (Jinja2, text + HTML) and the transports (SMTP, or a folder of
               .eml files in embedded mode), the enqueue hook and the send pass
- `digest.py`  the morning summary: when it is due in the user's timezone, what goes in
- `webhooks.py` fan-out of committed events into deliveries, signing and sending
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

"""What the JSON API and the web pages share: the request's unit of work, the caller behind
a bearer token or session cookie, `Idempotency-Key` replays, and problem+json answers.

The arrows: `api/` and `web/` import this package; it imports services and below, never
`api/` or `web/`.
"""

"""The app with its people and a deal, for the short prove/ checks."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from dealroom.app import create_app
from dealroom.clock import TestClock
from dealroom.config import Config
from dealroom.db.session import Database
from people import TEST_SECRET, Person, add_user, make_listing

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
#: How many examples hypothesis/schemathesis try per case: small in CI, larger in `make prove`.
EXAMPLES = int(os.environ.get("DEALROOM_PROVE_EXAMPLES", "15"))


class World:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.clock = TestClock(T0)
        self.app = create_app(
            Config(database_url=str(db.engine.url), secret_key=TEST_SECRET),
            database=db,
            clock=self.clock,
        )
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.seller = add_user(db, T0, "seller@parts.test", organization="Parts Inc")
        self.buyer = add_user(db, T0, "buyer@acme.test", organization="Acme Corp")
        self.outsider = add_user(db, T0, "outsider@else.test")
        self.operator = add_user(db, T0, "ops@market.test", roles=("operator",))
        self.admin = add_user(db, T0, "admin@market.test", roles=("admin",))
        self.listing = make_listing(self.client, self.seller, process="rfq")

    def new_deal(self) -> dict[str, Any]:
        """A deal with the seller's quote pending (version 2): the buyer's turn."""
        r = self.client.post("/v1/deals", headers=self.buyer.headers, json={
            "listing_id": self.listing["id"], "transition": "request-quote",
            "terms": {"quantity": 100}})  # fmt: skip
        assert r.status_code == 201, r.text
        deal = r.json()
        r = self.client.post(f"/v1/deals/{deal['id']}/transitions", headers=self.seller.headers, json={
            "name": "send-quote", "expected_version": deal["version"],
            "terms": {"unit_price": "48.00", "lead_time_days": 5}})  # fmt: skip
        assert r.status_code == 200, r.text
        return dict(r.json())

    def people(self) -> dict[str, Person | None]:
        return {"anonymous": None, "outsider": self.outsider, "buyer": self.buyer,
                "seller": self.seller, "operator": self.operator, "admin": self.admin}  # fmt: skip

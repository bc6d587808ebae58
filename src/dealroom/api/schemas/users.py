"""Accounts: tokens, users, and what others see of a user (their public profile and the
trust facts from their record)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

from dealroom.api.schemas.base import Input, Timestamp, known_timezone

EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

Email = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320, pattern=EMAIL_RE)
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=200)]
Role = Literal["admin", "operator"]
Plan = Literal["free", "paid"]


class TokenCreate(Input):
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)]
    password: Annotated[str, StringConstraints(max_length=200)]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "buyer@acme.example", "password": "correct horse battery"}]
        }
    )


class UserRead(BaseModel):
    """The caller's own account (GET /v1/me, a token, an admin creating a user)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    name: str
    organization: str | None
    roles: list[str]
    kyc_verified: bool
    plan: str
    timezone: str
    locale: str
    blocked: bool
    created_at: Timestamp


class TokenRead(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: Timestamp
    user: UserRead


class UserCreate(Input):
    email: Email
    name: Name
    password: Password
    organization: Name | None = None
    roles: list[Role] = Field(default_factory=list, max_length=2)
    kyc_verified: StrictBool = False
    plan: Plan = "free"
    timezone: Annotated[str, StringConstraints(max_length=64)] = "UTC"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "buyer@acme.example",
                    "name": "Amal Buyer",
                    "password": "correct horse battery",
                    "organization": "Acme Corp",
                    "roles": [],
                    "kyc_verified": True,
                    "plan": "paid",
                    "timezone": "Asia/Riyadh",
                }
            ]
        }
    )

    _timezone = field_validator("timezone")(known_timezone)

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


class TrustRead(BaseModel):
    """Facts from the record, not ratings: how long, how many, how fast (services.trust)."""

    member_since: str = Field(description="Account creation date (ISO-8601).")
    account_age_days: int
    kyc_verified: bool
    deals_closed: int = Field(description="Deals ended with an order, as buyer or seller.")
    deals_ended: int = Field(description="Deals that reached a final state.")
    completion_rate: float | None = Field(
        description="Share of ended deals that closed with an order (0…1); null before any."
    )
    median_response_seconds: int | None = Field(
        description="Median time this user took to answer the other party's move."
    )
    responses: int = Field(description="Answers the median and SLA share are taken over.")
    responses_within_sla: float | None = Field(
        description="Share of those answers within the process's response-time SLA (0…1)."
    )
    reviews_average: float | None = Field(description="Average published review rating.")
    reviews_count: int


class PublicProfileRead(BaseModel):
    """What anyone signed in may see of a user: no email, no roles."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    organization: str | None
    kyc_verified: bool
    created_at: Timestamp
    trust: TrustRead

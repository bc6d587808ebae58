"""Typed errors of the negotiation engine.

Each error carries its stable code (the rfq reference's NEG-001…010, plus codes in the same
style for what those do not cover), its HTTP status, the rule that refused the move, the
field concerned, and a sentence a buyer would understand. One handler at the edge renders
them as problem+json; nothing below the edge formats errors by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class FieldProblem:
    """One offending field of a refused request."""

    field: str
    rule: str
    message: str


class DealroomError(Exception):
    """Base of every error that dealroom reports to a client."""

    code: ClassVar[str] = "NEG-000"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Request refused"

    def __init__(
        self,
        detail: str,
        *,
        rule: str | None = None,
        field: str | None = None,
        problems: list[FieldProblem] | None = None,
        **context: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.rule = rule
        self.field = field
        self.problems = problems or []
        self.context = context

    def to_problem(self) -> dict[str, Any]:
        """The RFC 9457 body, less `type`/`instance` which the edge fills in."""
        body: dict[str, Any] = {
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if self.rule:
            body["rule"] = self.rule
        if self.field:
            body["field"] = self.field
        if self.problems:
            body["errors"] = [
                {"field": p.field, "rule": p.rule, "message": p.message} for p in self.problems
            ]
        body.update(self.context)
        return body


class QuoteExpired(DealroomError):
    code, status, title = "NEG-001", 410, "Quote expired"


class MaxRoundsExceeded(DealroomError):
    code, status, title = "NEG-002", 409, "Negotiation limit reached"


class CounterValidationFailed(DealroomError):
    code, status, title = "NEG-003", 422, "Terms refused"


class StaleDeal(DealroomError):
    code, status, title = "NEG-004", 409, "The deal changed meanwhile"


class AlreadyAccepted(DealroomError):
    code, status, title = "NEG-005", 409, "Quote already accepted"


class RequestExpired(DealroomError):
    code, status, title = "NEG-006", 410, "Request expired"


class InvalidTransition(DealroomError):
    code, status, title = "NEG-007", 409, "Move not possible now"


class NotAuthorized(DealroomError):
    code, status, title = "NEG-008", 403, "Not allowed"


class BuyerBlocked(DealroomError):
    code, status, title = "NEG-009", 403, "Account blocked"


class Unavailable(DealroomError):
    code, status, title = "NEG-010", 503, "Service unavailable"


class NotFound(DealroomError):
    code, status, title = "NEG-011", 404, "Not found"


class NotAuthenticated(DealroomError):
    code, status, title = "NEG-012", 401, "Authentication required"


class RateLimited(DealroomError):
    code, status, title = "NEG-013", 429, "Too many requests"


class Duplicate(DealroomError):
    code, status, title = "NEG-014", 409, "Already exists"


class VerificationRequired(DealroomError):
    code, status, title = "NEG-015", 403, "Verification or plan required"


class InvalidRequest(DealroomError):
    code, status, title = "NEG-016", 422, "Invalid request"


#: Every client-facing error class, by code: the documented catalogue.
ERROR_CLASSES: tuple[type[DealroomError], ...] = (
    QuoteExpired,
    MaxRoundsExceeded,
    CounterValidationFailed,
    StaleDeal,
    AlreadyAccepted,
    RequestExpired,
    InvalidTransition,
    NotAuthorized,
    BuyerBlocked,
    Unavailable,
    NotFound,
    NotAuthenticated,
    RateLimited,
    Duplicate,
    VerificationRequired,
    InvalidRequest,
)


@dataclass
class ProcessProblem:
    """One defect of a process definition: where it is and what is wrong."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class ProcessError(Exception):
    """A process file that cannot be loaded or fails the static checks."""

    source: str
    problems: list[ProcessProblem] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.source}: {len(self.problems)} problem(s)"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)

"""`dealroom users add`: user accounts, the first admin above all (who adds the others over
the API)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape

from dealroom.cli.common import database_or_exit, fail, out
from dealroom.config import get_config
from dealroom.domain.errors import Duplicate
from dealroom.services.uow import session_scope

app = typer.Typer(help="User accounts.", no_args_is_help=True)


@app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="Sign-in email (unique).")],
    name: Annotated[str, typer.Option("--name", help="Full name.")],
    password: Annotated[str, typer.Option("--password", help="At least 8 characters.")],
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role.")] = False,
    operator: Annotated[bool, typer.Option("--operator", help="Give the operator role.")] = False,
    organization: Annotated[str | None, typer.Option(help="Company name.")] = None,
    kyc: Annotated[bool, typer.Option("--kyc", help="Mark identity as verified.")] = False,
) -> None:
    """Add a user; with --admin, the first admin who then adds others over the API."""
    from dealroom.api.schemas import UserCreate
    from dealroom.services import accounts

    roles = [r for r, on in (("admin", admin), ("operator", operator)) if on]
    try:
        body = UserCreate.model_validate(
            {
                "email": email,
                "name": name,
                "password": password,
                "organization": organization,
                "roles": roles,
                "kyc_verified": kyc,
            }
        )
    except ValidationError as exc:
        fail(
            "The user was not added:",
            [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()],
        )
    with database_or_exit(get_config().database_url) as database:
        try:
            with session_scope(database) as s:
                user = accounts.create_user(
                    s,
                    email=body.email,
                    name=body.name,
                    password=body.password,
                    now=datetime.now(UTC),
                    organization=body.organization,
                    roles=body.roles,
                    kyc_verified=body.kyc_verified,
                )
                summary = (user.id, user.email, ", ".join(user.roles) or "user")
        except Duplicate as exc:
            fail(exc.detail)
    out().print(f"[green]✓[/] added {escape(summary[1])} ({escape(summary[2])}), id {summary[0]}")

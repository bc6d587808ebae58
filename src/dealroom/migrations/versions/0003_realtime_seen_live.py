"""notifications.seen_live_at: when a bell item was pushed to an open stream

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 16:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import dealroom.db.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("seen_live_at", dealroom.db.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("seen_live_at")

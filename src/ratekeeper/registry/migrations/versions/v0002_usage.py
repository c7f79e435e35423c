"""Usage counts per minute, hour and day, and where the next roll-up starts.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_COUNTS = (
    "allowed",
    "refused_rate",
    "refused_cap",
    "refused_block",
    "refused_unknown_key",
    "refused_other",
    "cost",
)
_TABLES = ("usage_minute", "usage_hour", "usage_day")


def upgrade() -> None:
    for name in _TABLES:
        op.create_table(
            name,
            sa.Column("start", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("key_id", sa.String(64), primary_key=True),
            sa.Column("category", sa.String(64), primary_key=True),
            *(sa.Column(count, sa.BigInteger, nullable=False) for count in _COUNTS),
        )
    state = op.create_table(
        "usage_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("dirty_from", sa.BigInteger, nullable=False),
    )
    # nothing added yet: the first roll-up starts from the first minute added
    op.bulk_insert(state, [{"id": 1, "dirty_from": 2**62}])


def downgrade() -> None:
    op.drop_table("usage_state")
    for name in reversed(_TABLES):
        op.drop_table(name)

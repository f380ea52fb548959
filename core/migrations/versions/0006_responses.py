"""responses, conversations and their items

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ACTIVE = "status IN ('queued','in_progress') AND conversation_id IS NOT NULL"


def _str(name: str, length: int | None = 64, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=nullable)


def _json(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, JSON, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "responses",
        _str("id"),
        _str("project", 128),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _str("model", None),
        _str("instructions", None, nullable=True),
        _json("tools"),
        _json("tool_choice"),
        sa.Column("parallel_tool_calls", sa.Boolean(), nullable=False),
        sa.Column("max_output_tokens", sa.Integer(), nullable=True),
        sa.Column("max_tool_calls", sa.Integer(), nullable=True),
        sa.Column("temperature", sa.Float(), nullable=True),
        sa.Column("top_p", sa.Float(), nullable=True),
        _json("text_format"),
        _str("truncation", 16),
        _json("reasoning"),
        _json("include"),
        _str("user", 512, nullable=True),
        _str("safety_identifier", 512, nullable=True),
        _str("prompt_cache_key", 512, nullable=True),
        _json("metadata"),
        sa.Column("store", sa.Boolean(), nullable=False),
        sa.Column("background", sa.Boolean(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        _str("previous_response_id", nullable=True),
        _str("conversation_id", nullable=True),
        _json("output"),
        _json("usage"),
        _json("error"),
        _json("incomplete_details"),
        sa.Column("completed_at", sa.Float(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        _str("owner", 128, nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("enqueued_at", sa.Float(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_responses_status", "responses", ["status"])
    op.create_index("ix_responses_previous_response_id", "responses", ["previous_response_id"])
    op.create_index(
        "ux_responses_one_active",
        "responses",
        ["conversation_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )

    op.create_table(
        "conversations",
        _str("id"),
        _str("project", 128),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        _json("metadata"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_conversations_project_seq", "conversations", ["project", "seq"])

    op.create_table(
        "items",
        _str("id"),
        _str("project", 128),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        _str("type", 32),
        _str("response_id", nullable=True),
        sa.Column("output", sa.Boolean(), nullable=False),
        _str("conversation_id", nullable=True),
        _json("data"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_items_response_seq", "items", ["response_id", "seq"])
    op.create_index("ix_items_conversation_seq", "items", ["conversation_id", "seq"])


def downgrade() -> None:
    op.drop_table("items")
    op.drop_table("conversations")
    op.drop_table("responses")

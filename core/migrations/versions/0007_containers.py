"""containers and their files

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _str(name: str, length: int | None = 64, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "containers",
        _str("id"),
        _str("project", 128),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        _str("name", 256),
        sa.Column("expires_minutes", sa.Integer(), nullable=False),
        sa.Column("last_active_at", sa.Float(), nullable=False),
        _str("memory_limit", 8),
        sa.Column("file_ids", JSON, nullable=True),
        _str("owner_key", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_containers_project_seq", "containers", ["project", "seq"])
    op.create_index("ix_containers_owner_key", "containers", ["owner_key"])
    op.create_table(
        "container_files",
        _str("id"),
        _str("container_id"),
        _str("project", 128),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        _str("path", 1024),
        sa.Column("bytes", sa.Integer(), nullable=False),
        _str("source", 16),
        _str("file_id", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_container_files_container_seq", "container_files", ["container_id", "seq"])


def downgrade() -> None:
    op.drop_table("container_files")
    op.drop_table("containers")

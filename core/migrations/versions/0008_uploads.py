"""uploads and their parts

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _str(name: str, length: int | None = 64, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "uploads",
        _str("id"),
        _str("project", 128),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        _str("filename", None),
        _str("purpose", 32),
        _str("mime_type", 256),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        _str("status", 16),
        _str("file_id", nullable=True),
        sa.Column("file_expires_seconds", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_uploads_project_seq", "uploads", ["project", "seq"])
    op.create_table(
        "upload_parts",
        _str("id"),
        _str("upload_id"),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_upload_parts_upload_seq", "upload_parts", ["upload_id", "seq"])


def downgrade() -> None:
    op.drop_table("upload_parts")
    op.drop_table("uploads")

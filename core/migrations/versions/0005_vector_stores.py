"""vector stores: stores, their files and file batches, and the embedded chunks they share

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _id(name: str, length: int = 64, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "vector_stores",
        _id("id"),
        _id("project", 128),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("metadata", JSON, nullable=True),
        sa.Column("expires_after", JSON, nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("last_active_at", sa.Float(), nullable=False),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("file_counts", JSON, nullable=True),
        _id("embedding_model", 256),
        sa.Column("embedding_endpoint", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_vector_stores_project_seq", "vector_stores", ["project", "seq"])

    op.create_table(
        "vector_store_files",
        _id("vector_store_id"),
        _id("id"),
        _id("project", 128),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        _id("status", 16),
        sa.Column("last_error", JSON, nullable=True),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("attributes", JSON, nullable=True),
        sa.Column("chunking_strategy", JSON, nullable=True),
        _id("batch_id", nullable=True),
        _id("content_key", nullable=True),
        sa.Column("enqueued_at", sa.Float(), nullable=True),
        _id("owner", 128, nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("vector_store_id", "id"),
    )
    op.create_index("ix_vector_store_files_store_seq", "vector_store_files", ["vector_store_id", "seq"])
    op.create_index("ix_vector_store_files_file", "vector_store_files", ["id"])
    op.create_index("ix_vector_store_files_batch", "vector_store_files", ["batch_id"])
    op.create_index("ix_vector_store_files_status", "vector_store_files", ["status"])
    op.create_index("ix_vector_store_files_content_key", "vector_store_files", ["content_key"])

    op.create_table(
        "vector_store_file_batches",
        _id("id"),
        _id("project", 128),
        _id("vector_store_id"),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        _id("status", 16),
        sa.Column("file_counts", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_vector_store_file_batches_store", "vector_store_file_batches", ["vector_store_id"])

    op.create_table(
        "file_chunks",
        _id("content_key"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("content_key", "position"),
    )


def downgrade() -> None:
    op.drop_table("file_chunks")
    op.drop_index("ix_vector_store_file_batches_store", table_name="vector_store_file_batches")
    op.drop_table("vector_store_file_batches")
    for name in ("content_key", "status", "batch", "file", "store_seq"):
        op.drop_index(f"ix_vector_store_files_{name}", table_name="vector_store_files")
    op.drop_table("vector_store_files")
    op.drop_index("ix_vector_stores_project_seq", table_name="vector_stores")
    op.drop_table("vector_stores")

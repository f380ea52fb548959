"""threads by project: the index that lists a project's threads in creation order
(GET /v1/assistd/threads, the playground's thread list)

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # as 0009: a large threads table gets the index first with CREATE INDEX CONCURRENTLY
    # (docs/operations.md) and this finds it there
    op.create_index("ix_threads_project_seq", "threads", ["project", "seq"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_threads_project_seq", table_name="threads")

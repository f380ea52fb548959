"""runs by project: the index that lists a project's runs across its threads in creation order
(GET /v1/assistd/runs, the playground's runs view)

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # in the migration's one transaction, like every other (it works through PgBouncer so); on a
    # runs table too large to hold its inserts up meanwhile, the operator builds the index first
    # with CREATE INDEX CONCURRENTLY (docs/operations.md) and this finds it there
    op.create_index("ix_runs_project_seq", "runs", ["project", "seq"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_runs_project_seq", table_name="runs")

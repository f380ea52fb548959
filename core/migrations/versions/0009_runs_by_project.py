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

NAME, COLUMNS = "ix_runs_project_seq", ["project", "seq"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(NAME, "runs", COLUMNS)
        return
    # runs is the busiest, largest table: built concurrently, the index does not hold up the
    # inserts of a server still running while `assistd migrate` works (CONCURRENTLY needs to be
    # outside a transaction)
    with op.get_context().autocommit_block():
        op.create_index(NAME, "runs", COLUMNS, postgresql_concurrently=True)


def downgrade() -> None:
    op.drop_index(NAME, table_name="runs")

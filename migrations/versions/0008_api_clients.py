"""evidence from trusted callers: API clients, trusted predictions, secret experiment salts

Revision ID: 0008
Revises: 0007

Predictions from before have no authenticated client, so they are untrusted: they stay on
record but leave the A/B figures. Experiments whose salt is their (public) name get a random
one; users already assigned keep their stored arm.
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "api_clients",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    # Plain ADD COLUMNs (no table rebuild): on SQLite a rebuild drops the old table, and with
    # foreign keys on that cascades into feedback and experiment arms.
    op.add_column("predictions", sa.Column("trusted", sa.Boolean(), nullable=False,
                                           server_default=sa.false()))
    op.add_column("predictions", sa.Column("client_id", sa.Integer(), nullable=True))
    op.add_column("experiments", sa.Column("include_builder", sa.Boolean(), nullable=False,
                                           server_default=sa.false()))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id FROM experiments WHERE salt = name")).all()
    for (experiment_id,) in rows:
        conn.execute(sa.text("UPDATE experiments SET salt = :salt WHERE id = :id"),
                     {"salt": secrets.token_hex(16), "id": experiment_id})


def downgrade():
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_column("include_builder")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("client_id")
        batch_op.drop_column("trusted")
    op.drop_table("api_clients")

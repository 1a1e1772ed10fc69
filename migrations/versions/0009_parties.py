"""live parties: parties, guests, queue, events

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "parties",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("join_code", sa.String(length=64), nullable=False),
        sa.Column("host_user_id", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("guests_control", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("join_code"),
    )
    op.create_table(
        "party_guests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("party_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("genres", sa.JSON(), nullable=True),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("joined_at", sa.DateTime(), nullable=False),
        sa.Column("left_at", sa.DateTime(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_party_guests_party", "party_guests", ["party_id"])
    op.create_table(
        "party_tracks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("party_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("turn_of", sa.Integer(), nullable=True),
        sa.Column("for_guests", sa.JSON(), nullable=False),
        sa.Column("present", sa.JSON(), nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_party_tracks_party", "party_tracks", ["party_id", "position"])
    op.create_table(
        "party_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("party_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=True),
        sa.Column("track_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_party_events_party", "party_events", ["party_id", "id"])


def downgrade():
    op.drop_index("ix_party_events_party", table_name="party_events")
    op.drop_table("party_events")
    op.drop_index("ix_party_tracks_party", table_name="party_tracks")
    op.drop_table("party_tracks")
    op.drop_index("ix_party_guests_party", table_name="party_guests")
    op.drop_table("party_guests")
    op.drop_table("parties")

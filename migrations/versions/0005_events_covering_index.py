"""covering index for a user's listening history by event type

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("listening_events", schema=None) as batch_op:
        batch_op.create_index("ix_events_user_type_track", ["user_id", "event_type", "track_id"],
                              unique=False)


def downgrade():
    with op.batch_alter_table("listening_events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_user_type_track")

"""trust: one feedback row per (prediction, user, track, event type); admin session versions

Revision ID: 0006
Revises: 0005

Existing duplicate feedback rows are merged first: the earliest report of each key stays (a
replay must not count, and that is what /feedback now does with a repeat), and ms_played is
cut at the track's known duration, as /feedback now does.
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.execute(
        "DELETE FROM feedback WHERE id NOT IN (SELECT keep FROM (SELECT MIN(id) AS keep "
        "FROM feedback GROUP BY prediction_id, user_id, track_id, event_type) AS firsts)"
    )
    op.execute(
        "UPDATE feedback SET ms_played = (SELECT t.duration_ms FROM tracks t "
        "WHERE t.id = feedback.track_id) WHERE ms_played > (SELECT t.duration_ms FROM tracks t "
        "WHERE t.id = feedback.track_id AND t.duration_ms > 0)"
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index("uq_feedback_event",
                              ["prediction_id", "user_id", "track_id", "event_type"], unique=True)
    op.create_table(
        "admin_session_versions",
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("username"),
    )


def downgrade():
    op.drop_table("admin_session_versions")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("uq_feedback_event")

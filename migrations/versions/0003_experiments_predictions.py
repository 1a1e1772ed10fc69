"""experiments, assignments, predictions, feedback; the default 50/50 experiment as data

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 04:21:47.326967

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# The experiment /predict uses out of the box. Created here, as data, so that every server that
# shares the database sees the same experiment and salt from the first request on.
DEFAULT_EXPERIMENT = {"name": "default", "salt": "default"}
DEFAULT_ARMS = (("base", 0.5), ("advanced", 0.5))


def upgrade():
    op.create_table('experiments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('salt', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('stopped_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.create_index('uq_experiments_one_active', ['active'], unique=True,
                              sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))

    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('arm', sa.String(length=32), nullable=False),
    sa.Column('bucket', sa.Float(), nullable=False),
    sa.Column('assigned_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('experiment_id', 'user_id', name='uq_assignment_user')
    )
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignments_user_id'), ['user_id'], unique=False)

    arms = op.create_table('experiment_arms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.CheckConstraint('weight >= 0', name='ck_arm_weight'),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('experiment_id', 'name', name='uq_arm_name')
    )
    op.create_table('predictions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('endpoint', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=32), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('experiment_id', sa.Integer(), nullable=True),
    sa.Column('arm', sa.String(length=32), nullable=True),
    sa.Column('is_ab', sa.Boolean(), nullable=False),
    sa.Column('fallback', sa.Boolean(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('other_users', sa.JSON(), nullable=False),
    sa.Column('playlist_length', sa.Integer(), nullable=False),
    sa.Column('strategy', sa.String(length=32), nullable=True),
    sa.Column('exclude_explicit', sa.Boolean(), nullable=False),
    sa.Column('track_ids', sa.JSON(), nullable=False),
    sa.Column('members', sa.JSON(), nullable=False),
    sa.Column('member_scores', sa.JSON(), nullable=True),
    sa.Column('member_fit', sa.JSON(), nullable=True),
    sa.Column('elapsed_ms', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_index('ix_predictions_created', ['created_at'], unique=False)
        batch_op.create_index('ix_predictions_experiment_arm', ['experiment_id', 'arm'], unique=False)
        batch_op.create_index('ix_predictions_user', ['user_id'], unique=False)

    op.create_table('feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prediction_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('track_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=16), nullable=False),
    sa.Column('ms_played', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("event_type IN ('play', 'skip', 'like')", name='ck_feedback_event'),
    sa.CheckConstraint('ms_played >= 0', name='ck_feedback_ms'),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index('ix_feedback_prediction', ['prediction_id'], unique=False)

    _create_default_experiment(arms)


def _create_default_experiment(arms_table):
    experiments = sa.table(
        'experiments',
        sa.column('id', sa.Integer), sa.column('name', sa.String), sa.column('salt', sa.String),
        sa.column('active', sa.Boolean), sa.column('created_at', sa.DateTime),
    )
    conn = op.get_bind()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    conn.execute(experiments.insert().values(active=True, created_at=now, **DEFAULT_EXPERIMENT))
    exp_id = conn.execute(
        sa.select(experiments.c.id).where(experiments.c.name == DEFAULT_EXPERIMENT["name"])
    ).scalar_one()
    op.bulk_insert(arms_table, [
        {"experiment_id": exp_id, "name": name, "weight": weight} for name, weight in DEFAULT_ARMS
    ])


def downgrade():
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_feedback_prediction')

    op.drop_table('feedback')
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_index('ix_predictions_user')
        batch_op.drop_index('ix_predictions_experiment_arm')
        batch_op.drop_index('ix_predictions_created')

    op.drop_table('predictions')
    op.drop_table('experiment_arms')
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assignments_user_id'))

    op.drop_table('assignments')
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_index('uq_experiments_one_active')

    op.drop_table('experiments')

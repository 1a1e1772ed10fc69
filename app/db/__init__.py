"""SQLAlchemy models, one module per area. Importing this package registers all tables."""
from app.db.admin_users import AdminSessionVersion, AdminUser  # noqa: F401
from app.db.api_clients import ApiClient  # noqa: F401
from app.db.catalog import (  # noqa: F401
    Artist,
    EVENT_TYPES,
    Genre,
    ListeningEvent,
    STORAGE_CLASSES,
    Track,
    TrackStorage,
    User,
    artist_genres,
    user_genres,
)
from app.db.experiments import (  # noqa: F401
    Assignment,
    Experiment,
    ExperimentArm,
    Feedback,
    Prediction,
)
from app.db.model_versions import ModelVersion  # noqa: F401
from app.db.parties import Party, PartyEvent, PartyGuest, PartyTrack  # noqa: F401

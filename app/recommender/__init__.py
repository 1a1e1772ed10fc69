"""Group-playlist recommendation: training, artifacts, scoring, strategies, base model."""

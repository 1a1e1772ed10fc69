"""Small helpers every layer may use (time, bounded maps, cached values, text, progress): no
Flask blueprints and nothing from the layers above."""

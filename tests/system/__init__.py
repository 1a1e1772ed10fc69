"""The whole product as processes: gunicorn, faults, PostgreSQL, the notebook, CLI text."""

"""Pozytywka exports: the synthetic generator, the validating importer and the ``data`` CLI."""

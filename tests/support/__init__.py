"""Plain helpers the tests import: paths, apps, gunicorn servers, traffic, data factories and
browser checks. ``tests/conftest.py`` (and each folder's conftest) holds only fixtures and
builds them from these, so no test imports a conftest as a module."""

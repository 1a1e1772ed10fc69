"""Tests of app/admin: login, pages, experiments managed from the admin, charts."""

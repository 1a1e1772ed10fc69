"""Tests of app/db: the migrations against the models."""

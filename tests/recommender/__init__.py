"""Tests of app/recommender: scoring, strategies, the promise, retrieval, training, artifacts."""

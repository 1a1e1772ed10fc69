"""Tests of app/data: the demo-data generator and the importer."""

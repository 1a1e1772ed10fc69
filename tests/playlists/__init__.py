"""Tests of the serving path: a group playlist built, recorded and logged."""

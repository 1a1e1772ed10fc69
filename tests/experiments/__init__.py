"""Tests of app/experiments: assignment, the success metric, statistics, the simulation."""

"""A/B experiments in one place: assignment, the success metric, statistics, the report, the
simulation and the `flask ab` CLI. The admin pages and the API only call into it; the tables
stay in app/db/experiments.py with the others."""

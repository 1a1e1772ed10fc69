"""The export importer: row validation, writing to the database, and the report of both."""

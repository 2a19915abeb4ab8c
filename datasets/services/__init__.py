"""Writes for the catalog: one path for each DQ2 operation, used by the API, the CLI and tasks."""

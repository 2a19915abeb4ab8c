"""Writes for jobs. Every state change goes through jobs.services.state."""

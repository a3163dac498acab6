"""Durable background jobs on the project's own tables (issue 14): a registry of handlers and
periodic tasks, and a worker that claims due jobs under a lease."""

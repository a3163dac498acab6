"""Saved searches, watched properties and the alerts they produce (issue 14)."""

"""Serving the price model: the active model of the registry, training jobs, and the limits
of what may be estimated."""

"""Resilience around every data source: bulkhead, retry (stamina), circuit breaker, timeout,
and the request deadline they all respect (see dependency.py; the app's policies are in
policies.py)."""

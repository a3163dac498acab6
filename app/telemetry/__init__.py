"""What operators see of the service: Prometheus metrics, structured logs, traces.

The bottom layer (it imports nothing of the application), so every layer may report: the
resilience guards, the cache, the database handle, the job worker, the HTTP edge.
"""

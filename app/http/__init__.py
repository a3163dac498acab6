"""The HTTP edge: the request gate, the JSON front door, Strawberry's view, media types,
security headers, health checks and rate limits."""

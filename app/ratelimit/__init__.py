"""Per-client rate limits (the `limits` library: moving windows on Redis, or in memory)."""

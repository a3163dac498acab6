"""Who is asking: access tokens, API keys, password hashing, the request principal."""

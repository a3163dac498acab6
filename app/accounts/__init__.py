"""Accounts: who is asking (principals), passwords, tokens and API keys."""

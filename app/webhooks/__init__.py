"""Webhook endpoints and signed deliveries, to the Standard Webhooks specification (issue 14)."""

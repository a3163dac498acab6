"""Standard Webhooks signatures (https://www.standardwebhooks.com), made by the reference
`standardwebhooks` package so that every receiver's library agrees with us."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


def new_secret() -> str:
    """`whsec_` + base64 of random bytes: the form every Standard Webhooks library reads."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@lru_cache(maxsize=4096)
def _signer(secret: str) -> Webhook:
    # Decoding the secret costs more than the HMAC; endpoints sign many messages.
    return Webhook(secret)


def signature_header(
    signing_secrets: Sequence[str], message_id: str, timestamp: int, body: str
) -> str:
    """`webhook-signature`: one `v1,<base64>` per secret, space separated (while a secret
    rotates, the old one signs too, so receivers that still hold it keep verifying)."""
    at = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(_signer(s).sign(message_id, at, body) for s in signing_secrets)


def headers(
    signing_secrets: Sequence[str], message_id: str, timestamp: int, body: str
) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(signing_secrets, message_id, timestamp, body),
        "content-type": "application/json",
    }

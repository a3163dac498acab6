"""Global ids: base64url("<Type>:<primary key>"), the encoding every layer shares.

The API (schema/ids.py) issues and checks these ids; domains write them into what they send
elsewhere (webhook bodies), so a client sees one id for one object wherever it meets it.
"""

from __future__ import annotations

import base64
import binascii


def encode_global_id(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode()


def decode_global_id(global_id: str) -> tuple[str, int]:
    """(type name, primary key); ValueError when `global_id` is not of this form."""
    try:
        decoded = base64.urlsafe_b64decode(global_id.encode() + b"=" * (-len(global_id) % 4))
        type_name, _, raw_pk = decoded.decode().partition(":")
        return type_name, int(raw_pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError(f"{global_id!r} is not a global id") from None

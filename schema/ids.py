"""Relay global ids: base64("<Type>:<primary key>"), opaque to clients."""

from __future__ import annotations

import strawberry

from app.errors import UserInputError
from app.ids import decode_global_id, encode_global_id

NODE_TYPES = ("Property", "Sale", "Locality")
MAX_PK = 2**63 - 1
"""Primary keys are BIGINT (SQLite's INTEGER: the same 64 bits); a number past it was never
issued, and the database driver would refuse it as a parameter (an internal error)."""


def to_global_id(type_name: str, pk: int) -> strawberry.ID:
    return strawberry.ID(encode_global_id(type_name, pk))


def from_global_id(
    global_id: str, *, argument: str = "id", types: tuple[str, ...] = NODE_TYPES
) -> tuple[str, int]:
    """(type name, primary key) of an id this API issued; BAD_USER_INPUT otherwise."""
    try:
        type_name, pk = decode_global_id(global_id)
    except ValueError:
        raise UserInputError(
            f"{global_id!r} is not an id this API issued", argument=argument
        ) from None
    if type_name not in types or not 1 <= pk <= MAX_PK:
        raise UserInputError(f"{global_id!r} is not an id this API issued", argument=argument)
    return type_name, pk


def expect_global_id(global_id: str, type_name: str, *, argument: str = "id") -> int:
    actual, pk = from_global_id(global_id, argument=argument, types=(*NODE_TYPES, type_name))
    if actual != type_name:
        raise UserInputError(
            f"{global_id!r} is the id of a {actual}, not of a {type_name}", argument=argument
        )
    return pk

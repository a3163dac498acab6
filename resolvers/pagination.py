"""Argument checks shared by every connection field."""

from __future__ import annotations

from typing import Any

from app.context import Context
from app.errors import UserInputError
from db.keyset import InvalidCursor, KeysetOrder


def page_size(context: Context, first: int, *, argument: str = "first") -> int:
    cap = context.settings.max_page_size
    if not 0 <= first <= cap:
        raise UserInputError(
            f"`{argument}` must be between 0 and {cap}, got {first}", argument=argument
        )
    return first


def cursor_values(
    order: KeysetOrder[Any], after: str | None, *, argument: str = "after"
) -> tuple[Any, ...] | None:
    if after is None:
        return None
    try:
        return tuple(order.decode(after))
    except InvalidCursor as error:
        raise UserInputError(
            f"invalid cursor in `{argument}`: {error}", argument=argument
        ) from None

"""Batch forms of resolvers: one call resolves a field for every parent at one level.

A field that needs a loader is written once, as a batch function `(parents, context, **args)
-> values in parent order`; its Strawberry resolver is the one-parent case of it, registered
with `@one_parent_of(batch)`. The standard executor calls the Strawberry resolver per parent
(the DataLoader then batches); the compiled executor (app/graphql) calls the batch function
once per level. Both run the same code, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

BatchResolver = Callable[..., Awaitable[list[Any]]]
"""`async (parents: list[Any], context: Context, **arguments) -> list[Any]`, one per parent."""

Resolver = TypeVar("Resolver", bound=Callable[..., Any])

_BATCH_OF: dict[Callable[..., Any], BatchResolver] = {}


def one_parent_of(batch: BatchResolver) -> Callable[[Resolver], Resolver]:
    """Registers the decorated Strawberry resolver as the one-parent case of `batch`."""

    def register(resolver: Resolver) -> Resolver:
        _BATCH_OF[resolver] = batch
        return resolver

    return register


def batch_of(resolver: Callable[..., Any]) -> BatchResolver | None:
    return _BATCH_OF.get(resolver)

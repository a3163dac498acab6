"""Loader-backed fields, declared once: the batch function is the resolver.

A field that needs a loader is one `async def` over all the parents of a level::

    @batched(Audience.PUBLIC)
    async def sales(
        parents: list[PropertyRecord], context: Context, first: int = 10, after: str | None = None
    ) -> list[Page[SaleRecord]]:
        ...  # one value per parent, in parent order

Its GraphQL arguments (names, defaults, and descriptions through
`Annotated[..., strawberry.argument(...)]`) are the keyword parameters after `context`,
written once. `batched` returns the one-parent Strawberry resolver derived from it, and the
type names that (`strawberry.field(resolver=property_resolvers.sales, ...)`):

* Strawberry's executor calls the derived resolver once per parent; the calls of one tick
  with equal arguments are gathered by a per-request DataLoader into ONE call of the batch
  function, so every such field batches on both executors (statement counts are equal).
* The compiled executor (app/graphql) calls the batch function itself, once per level.

The audience is part of the declaration, and nothing has a default, so every author decides:
`Audience.PUBLIC` fields answer the same to every caller (a plan may run them, and a response
made only of public fields may be cached for everyone); `Audience.CALLER` fields depend on who
asks (user, API key): plans run them, but no response holding one is ever stored, and their
batch functions must not put what they read in a cache shared by callers.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from strawberry.dataloader import DataLoader
from strawberry.types import Info

from app.context import Context

BatchResolver = Callable[..., Awaitable[list[Any]]]
"""`async (parents: list[Any], context: Context, **arguments) -> list[Any]`, one per parent."""


class Audience(Enum):
    PUBLIC = "public"
    """The same answer for every caller."""
    CALLER = "caller"
    """Depends on who asks: never stored in a cache that another caller can read."""


@dataclass(frozen=True, slots=True, eq=False)
class BatchField:
    """What the compiled executor needs to know of a loader-backed field."""

    batch: BatchResolver
    audience: Audience
    cacheable: bool
    """Whether a response holding this field may be stored (public and not volatile)."""


_DECLARED: dict[Callable[..., Any], BatchField] = {}


def batched(
    audience: Audience, *, cacheable: bool = True
) -> Callable[[BatchResolver], Callable[..., Awaitable[Any]]]:
    """Declares a batch function as a field's resolver; returns its one-parent resolver.

    `cacheable=False`: public, but a stored response would go out of date in a way that no
    invalidation tag reports (nothing uses it yet; it exists so that such a field is one
    keyword away from being safe)."""

    def declare(batch: BatchResolver) -> Callable[..., Awaitable[Any]]:
        field = BatchField(
            batch=batch, audience=audience, cacheable=cacheable and audience is Audience.PUBLIC
        )
        resolver = _one_parent_resolver(field)
        _DECLARED[resolver] = field
        return resolver

    return declare


def declaration_of(resolver: Callable[..., Any]) -> BatchField | None:
    """The declaration behind a Strawberry resolver, None if it was not declared batched."""
    return _DECLARED.get(resolver)


def _one_parent_resolver(field: BatchField) -> Callable[..., Awaitable[Any]]:
    batch = field.batch
    signature = inspect.signature(batch)
    parents, context, *arguments = signature.parameters.values()
    if parents.name != "parents" or context.name != "context":
        raise TypeError(f"{batch.__qualname__}: a batch function starts (parents, context, ...)")

    async def resolve(root: Any, info: Info, **kwargs: Any) -> Any:
        return await _gatherer(info.context, field, kwargs).load(root)

    # Strawberry reads the GraphQL arguments off this signature, evaluating its annotations
    # (strings, under `from __future__ import annotations`) in the batch function's module.
    resolve.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            inspect.Parameter("root", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Info),
            *arguments,
        ],
        return_annotation=_item_type(batch),
    )
    resolve.__module__ = batch.__module__
    resolve.__name__ = batch.__name__
    resolve.__qualname__ = batch.__qualname__
    resolve.__doc__ = batch.__doc__
    return resolve


def _item_type(batch: BatchResolver) -> Any:
    """`X` of a batch function returning `list[X]` (documentation only: each type field names
    its GraphQL type itself)."""
    try:
        returned = typing.get_type_hints(batch).get("return")
    except NameError:  # an annotation only a type checker resolves
        return inspect.Signature.empty
    if typing.get_origin(returned) is list:
        return typing.get_args(returned)[0]
    return inspect.Signature.empty


def _gatherer(context: Context, field: BatchField, kwargs: dict[str, Any]) -> DataLoader[Any, Any]:
    """The request's loader of `field` for these arguments: parents of one tick, one call.

    Arguments are keyed by their repr: input objects are dataclasses (unhashable, but their
    repr names every field), the rest are scalars and enums."""
    key = (field, tuple(sorted((name, repr(value)) for name, value in kwargs.items())))
    loader: DataLoader[Any, Any] | None = context.field_batches.get(key)
    if loader is None:

        async def load(parents: list[Any]) -> list[Any]:
            return await field.batch(parents, context, **kwargs)

        # No per-key cache: a parent is a record (not hashable by value), asked for once.
        loader = DataLoader(load_fn=load, cache=False)
        context.field_batches[key] = loader
    return loader

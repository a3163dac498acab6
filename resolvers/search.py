"""Query.searchAddresses and Query.suggestLocalities: a ranked top-N, one statement each.

Not a keyset connection: a ranking has no stable order to resume from (a write can move any
row's score), and the answer is bounded by `first` (at most MAX_RESULTS), so there is no next
page to ask for.
"""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from app.cache import Resource
from app.context import Context
from app.search.service import check_arguments, search_terms, tokens
from db.repositories import search as repository
from db.repositories.search import AddressHit, LocalityHit
from resolvers.fields import Audience, batched

QUERY = Annotated[
    str,
    strawberry.argument(
        description="What was typed so far, e.g. '2/73 smith st newt' (1 to 200 characters)."
    ),
]
FIRST = Annotated[int, strawberry.argument(description="How many matches, 1 to 20.")]


def _address_tags(_position: int, rows: list[list[Any]]) -> list[str]:
    # Any property write can change what a search finds: `list:properties`, as every list.
    tags = ["list:properties"]
    for record, locality, _score in rows:
        tags += [f"property:{record.id}", f"locality:{locality.id}"]
    return tags


@batched(Audience.PUBLIC)
async def search_addresses(
    parents: list[None], context: Context, query: QUERY, first: FIRST = 10
) -> list[list[AddressHit]]:
    check_arguments(query, first)
    typed = tokens(query)
    terms = search_terms(typed)
    if terms is None:
        return [[] for _ in parents]

    async def load(_positions: list[int]) -> list[list[list[Any]]]:
        hits = await repository.search_addresses(context.db, terms, first)
        # Cached as plain lists of records (the cache's codec knows records, not hits).
        return [[[hit.property, hit.locality, hit.score] for hit in hits]]

    (rows,) = await context.cache.fetch_many(
        Resource.LIST,
        [f"search:addresses:{first}:{' '.join(typed)}"],
        load,
        _address_tags,
        context.scope,
    )
    hits = [AddressHit(record, locality, score) for record, locality, score in rows]
    # The rows carry their property and locality: `property(id)`, `address` and `locality`
    # below read them without a statement.
    context.loaders.property_by_id.prime_records([hit.property for hit in hits])
    context.loaders.locality_by_id.prime_many({hit.locality.id: hit.locality for hit in hits})
    return [hits for _ in parents]


@batched(Audience.PUBLIC)
async def suggest_localities(
    parents: list[None], context: Context, query: QUERY, first: FIRST = 10
) -> list[list[LocalityHit]]:
    check_arguments(query, first)
    typed = tokens(query)
    terms = search_terms(typed)
    if terms is None:
        return [[] for _ in parents]

    async def load(_positions: list[int]) -> list[list[list[Any]]]:
        hits = await repository.search_localities(context.db, terms, first)
        return [[[hit.locality, hit.score] for hit in hits]]

    (rows,) = await context.cache.fetch_many(
        Resource.LIST,
        [f"search:localities:{first}:{' '.join(typed)}"],
        load,
        lambda _position, rows: [
            "list:localities",
            *(f"locality:{locality.id}" for locality, _score in rows),
        ],
        context.scope,
    )
    hits = [LocalityHit(locality, score) for locality, score in rows]
    context.loaders.locality_by_id.prime_many({hit.locality.id: hit.locality for hit in hits})
    return [hits for _ in parents]

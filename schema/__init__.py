"""The GraphQL schema: Query and the extensions every operation runs with."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache

from db.records import LocalityRecord, Page, PropertyRecord, SaleRecord
from resolvers import localities, node, properties
from schema.errors import PropintelSchema
from schema.extensions import SqlStatementCount
from schema.types import Locality, LocalityConnection, Node, Property, PropertyConnection, Sale


@strawberry.type
class Query:
    property: PropertyRecord | None = strawberry.field(
        resolver=properties.property_by_id, graphql_type=Property | None
    )
    node: PropertyRecord | SaleRecord | LocalityRecord | None = strawberry.field(
        resolver=node.node, graphql_type=Node | None
    )
    properties: Page[PropertyRecord] = strawberry.field(
        resolver=properties.properties, graphql_type=PropertyConnection
    )
    locality: LocalityRecord | None = strawberry.field(
        resolver=localities.locality_by_name, graphql_type=Locality | None
    )
    localities: Page[LocalityRecord] = strawberry.field(
        resolver=localities.localities, graphql_type=LocalityConnection
    )


def build_schema(*, count_statements: bool) -> strawberry.Schema:
    # Clients send the same few documents over and over: parse and validate each once
    # (the caches live at module level; these factories only look them up).
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
    ]
    if count_statements:
        extensions.append(SqlStatementCount)
    return PropintelSchema(query=Query, types=[Property, Sale, Locality], extensions=extensions)

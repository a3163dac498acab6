"""The JSON path of a plan: a selection PostgreSQL can answer whole, as JSON, in one statement.

When an operation's one batched root field (`property(id)`, `properties(...)`) selects only
things SQL reproduces exactly (columns, global ids, cursors, page info, enum names, nested
pages of sales), the planner compiles, once per document, a `Shape`
(db/repositories/json_pages.py) and a `JsonField`; on PostgreSQL the plan then runs the
field's JSON batch instead of its batch resolver and everything below it: one keyset
statement (a property and its first N sales, a page of properties with theirs), its answer
embedded unparsed (orjson.Fragment). Anything else in the selection (floats, totalCount,
addresses, localities, estimates, ...) leaves the operation on the usual path; so does
SQLite. (Beside other root fields, a JSON batch could cost more statements than the standard
path's shared batches: see plan.py, `_json_only_when_alone`.)

The proofs are by the schema and the column types: an Int from a BIGINT column is
range-checked in SQL, a non-null field from a nullable column null-checked, and a
failed check makes the answer unshowable, so the standard executor runs the operation and
reports the error exactly as before (db/repositories/json_pages.py).

Argument checks are the resolvers' own functions (page sizes, cursors, filters, ids), so
errors are raised for the same inputs; any error hands the operation to the standard
executor, which reports it with its path and code.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import orjson
from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
    is_non_null_type,
)
from strawberry.types.field import StrawberryField

# The resolvers' modules import the schema's, which import them back: the schema comes first.
import schema as _schema_first  # noqa: F401
from app.cache import PassThrough, Resource
from app.context import Context
from db.keyset import KeysetOrder
from db.repositories import json_pages
from db.repositories.json_pages import (
    Column,
    Connection,
    Constant,
    Cursor,
    EmptyAsNull,
    EnumName,
    GlobalId,
    JsonQuery,
    Node,
    Nodes,
    ObjectShape,
    PageInfo,
    PageParams,
)
from db.repositories.json_pages import Edges as EdgesShape
from db.repositories.properties import PROPERTY_ORDERS, properties_page_statement
from loaders.json import JsonKey, JsonRequest
from resolvers import properties as property_resolvers
from resolvers import sales as sale_resolvers
from resolvers.filters import property_criteria
from resolvers.pagination import cursor_values, page_size
from schema.ids import expect_global_id

logger = logging.getLogger("propintel.execution")

MAX_SHAPES = 512
"""Distinct shapes given the JSON path per process (their statements stay prepared); past it
new documents take the usual path (bounded memory whatever clients send)."""

Convert = Callable[[Any], dict[str, Any]]
"""Converts a field's `Arguments` (app/graphql/plan.py) for this request's variables."""


class Compiler(Protocol):
    """What the shape compiler needs of the planner's compiler (app/graphql/plan.py)."""

    def collect(
        self,
        type_: GraphQLObjectType,
        selection_set: SelectionSetNode,
        grouped: dict[str, list[FieldNode]],
    ) -> None: ...

    def make_arguments(
        self, definition: GraphQLField, node: FieldNode, field: StrawberryField
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class JsonField:
    fetch: Callable[[list[Any], Context, Convert, dict[str, Any]], Awaitable[list[Any]]]
    """(parents, context, convert, the field's own converted arguments) -> one value per
    parent: an orjson.Fragment, or None."""


class _NoJson(Exception):
    """Something in the selection has no exact SQL rendering."""


_TABLES = {"Property": "properties", "Sale": "sales"}
_GLOBAL_IDS: dict[Any, str] = {
    property_resolvers.global_id: "Property",
    sale_resolvers.global_id: "Sale",
}
_CONNECTIONS: dict[Any, tuple[str, str]] = {property_resolvers.sales: ("sales_of_property", "Sale")}
"""Batched fields whose page nests in a parent's JSON: (relation, node type)."""
_SCALARS = {"Int": {"int32", "int64"}, "String": {"text"}, "Boolean": {"bool"}, "Date": {"date"}}
_PAGE_INFO = ("hasNextPage", "hasPreviousPage", "startCursor", "endCursor")

_queries: OrderedDict[str, JsonQuery] = OrderedDict()


def _query_for(shape: json_pages.Shape) -> tuple[JsonQuery, str] | None:
    fingerprint = hashlib.blake2b(repr(shape).encode(), digest_size=12).hexdigest()
    query = _queries.get(fingerprint)
    if query is None:
        if len(_queries) >= MAX_SHAPES:
            return None
        query = _queries[fingerprint] = JsonQuery(shape)
    return query, fingerprint


class _Shaper:
    def __init__(self, compiler: Compiler, schema: GraphQLSchema) -> None:
        self.compiler = compiler
        self.schema = schema
        self.slots: dict[int, tuple[Any, KeysetOrder[Any]]] = {}
        """Nested pages: slot -> (their field's Arguments, their order)."""

    def grouped(
        self, type_: GraphQLObjectType, selection_sets: Sequence[SelectionSetNode]
    ) -> dict[str, list[FieldNode]]:
        grouped: dict[str, list[FieldNode]] = {}
        for selection_set in selection_sets:
            self.compiler.collect(type_, selection_set, grouped)
        return grouped

    def object(self, type_: GraphQLObjectType, nodes: Sequence[FieldNode]) -> ObjectShape:
        table = _TABLES.get(type_.name)
        if table is None:
            raise _NoJson(type_.name)
        fields: list[Any] = []
        for key, field_nodes in self.grouped(type_, _selections(nodes)).items():
            fields.append(self.object_field(type_, table, key, field_nodes))
        return ObjectShape(table, tuple(fields))

    def object_field(
        self, type_: GraphQLObjectType, table: str, key: str, nodes: list[FieldNode]
    ) -> Any:
        name = nodes[0].name.value
        if name == "__typename":
            return Constant(key, type_.name)
        if name.startswith("__"):
            raise _NoJson("introspection")
        definition = type_.fields[name]
        field = _strawberry_field(definition)
        output = definition.type
        named = get_named_type(output)
        non_null = is_non_null_type(output)
        resolver = field.base_resolver
        if resolver is None:
            if is_list_type(get_nullable_type(output)):
                raise _NoJson("a list")
            kind = json_pages.column_kind(table, field.python_name)
            if kind is None or not isinstance(named, GraphQLScalarType):
                raise _NoJson(name)
            column_type, nullable = kind
            if column_type not in _SCALARS.get(named.name, set()):
                raise _NoJson(f"{type_.name}.{name}: {named.name} from {column_type}")
            return Column(
                key,
                field.python_name,
                int32=column_type == "int64",
                required=non_null and nullable,
            )
        function = resolver.wrapped_func
        if function in _GLOBAL_IDS and _GLOBAL_IDS[function] == type_.name:
            return GlobalId(key, type_.name)
        if function is property_resolvers.strata_lot and not non_null:
            return EmptyAsNull(key, "strata_lot")
        if function is property_resolvers.nature and isinstance(named, GraphQLEnumType):
            if non_null:
                raise _NoJson(name)
            # The resolver: PropertyNature(stored) for the stored values it knows, else null.
            names = tuple(
                (_stored(value.value), enum_name) for enum_name, value in named.values.items()
            )
            return EnumName(key, "nature", names)
        declared = _CONNECTIONS.get(function)
        if declared is not None and isinstance(named, GraphQLObjectType):
            relation, node_type = declared
            slot = len(self.slots) + 1
            self.slots[slot] = (
                self.compiler.make_arguments(definition, nodes[0], field),
                json_pages.RELATIONS[relation].order,
            )
            return self.connection(key, relation, slot, named, nodes, node_type)
        raise _NoJson(f"{type_.name}.{name}")

    def connection(
        self,
        key: str,
        relation: str,
        slot: int,
        type_: GraphQLObjectType,
        nodes: Sequence[FieldNode],
        node_type: str,
    ) -> Connection:
        node_object = self.schema.get_type(node_type)
        if not isinstance(node_object, GraphQLObjectType):
            raise _NoJson(node_type)
        parts: list[Any] = []
        for part_key, part_nodes in self.grouped(type_, _selections(nodes)).items():
            name = part_nodes[0].name.value
            if name == "__typename":
                parts.append(Constant(part_key, type_.name))
            elif name == "edges":
                parts.append(self.edges(part_key, type_.fields[name], part_nodes, node_object))
            elif name == "nodes":
                _plain(type_.fields[name])
                parts.append(Nodes(part_key, self.object(node_object, part_nodes)))
            elif name == "pageInfo":
                parts.append(self.page_info(part_key, type_.fields[name], part_nodes))
            else:  # totalCount: counted by its own loader
                raise _NoJson(f"{type_.name}.{name}")
        return Connection(key, relation, slot, tuple(parts))

    def edges(
        self,
        key: str,
        definition: GraphQLField,
        nodes: list[FieldNode],
        node_object: GraphQLObjectType,
    ) -> EdgesShape:
        _plain(definition)
        edge_type = get_named_type(definition.type)
        assert isinstance(edge_type, GraphQLObjectType)
        fields: list[Any] = []
        for field_key, field_nodes in self.grouped(edge_type, _selections(nodes)).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                fields.append(Constant(field_key, edge_type.name))
            elif name == "cursor":
                _plain(edge_type.fields[name])
                fields.append(Cursor(field_key))
            elif name == "node":
                _plain(edge_type.fields[name])
                fields.append(Node(field_key, self.object(node_object, field_nodes)))
            else:
                raise _NoJson(f"{edge_type.name}.{name}")
        return EdgesShape(key, tuple(fields))

    def page_info(self, key: str, definition: GraphQLField, nodes: list[FieldNode]) -> PageInfo:
        _plain(definition)
        info_type = get_named_type(definition.type)
        assert isinstance(info_type, GraphQLObjectType)
        fields: list[tuple[str, str]] = []
        for field_key, field_nodes in self.grouped(info_type, _selections(nodes)).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                fields.append((field_key, "=" + info_type.name))
            elif name in _PAGE_INFO:
                _plain(info_type.fields[name])
                fields.append((field_key, name))
            else:
                raise _NoJson(f"{info_type.name}.{name}")
        return PageInfo(key, tuple(fields))


def _stored(value: Any) -> str:
    """What the column holds for an enum value (Strawberry keeps the member's value)."""
    stored = value.value if isinstance(value, Enum) else value
    if not isinstance(stored, str):
        raise _NoJson("an enum value that is not a string")
    return stored


def _selections(nodes: Sequence[FieldNode]) -> list[SelectionSetNode]:
    return [node.selection_set for node in nodes if node.selection_set]


def _strawberry_field(definition: GraphQLField) -> StrawberryField:
    field: StrawberryField = definition.extensions["strawberry-definition"]
    if field.permission_classes or field.extensions:
        raise _NoJson("permission classes or extensions")
    return field


def _plain(definition: GraphQLField) -> None:
    """A field read from the page's own attributes (edges, cursor, node, page info)."""
    if _strawberry_field(definition).base_resolver is not None:
        raise _NoJson("a resolver")


def json_alternative(
    compiler: Compiler,
    schema: GraphQLSchema,
    parent: GraphQLObjectType,
    definition: GraphQLField,
    nodes: list[FieldNode],
    function: Any,
) -> JsonField | None:
    """The JSON path of a batched field, None when its selection is not all SQL's."""
    shaper = _Shaper(compiler, schema)
    named = get_named_type(definition.type)
    if not isinstance(named, GraphQLObjectType):
        return None
    try:
        if parent.name == "Query" and function is property_resolvers.property_by_id:
            shape: json_pages.Shape = shaper.object(named, nodes)
            make = _property_by_id
        elif parent.name == "Query" and function is property_resolvers.properties:
            shape = shaper.connection(nodes[0].name.value, "", 0, named, nodes, "Property")
            make = _properties_page
        else:
            return None
    except _NoJson:
        return None
    except Exception:  # fail closed: a surprise here must never cost the plan itself
        logger.exception("no JSON path for %s.%s", parent.name, definition.ast_node)
        return None
    found = _query_for(shape)
    if found is None:
        return None
    query, fingerprint = found
    return JsonField(make(query, fingerprint, shaper.slots))


Slots = Mapping[int, tuple[Any, KeysetOrder[Any]]]


def _nested(context: Context, slots: Slots, convert: Convert) -> dict[int, PageParams]:
    pages: dict[int, PageParams] = {}
    for slot, (arguments, order) in slots.items():
        values = convert(arguments)
        size = page_size(context, values["first"])
        pages[slot] = PageParams(size, cursor_values(order, values["after"]))
    return pages


def _prefix(fingerprint: str, pages: Mapping[int, PageParams]) -> str:
    return f"json:{fingerprint}:{sorted(pages.items())!r}"


def _fragment(value: bytes | str | None) -> orjson.Fragment | None:
    return None if value is None else orjson.Fragment(value)


Make = Callable[[JsonQuery, str, Slots], Any]


def _property_by_id(query: JsonQuery, fingerprint: str, slots: Slots) -> Any:
    async def fetch(
        parents: list[Any], context: Context, convert: Convert, own: dict[str, Any]
    ) -> list[Any]:
        pk = expect_global_id(own["id"], "Property")
        pages = _nested(context, slots, convert)
        request = JsonRequest(query, pages, _prefix(fingerprint, pages))
        value = await context.loaders.property_json.load(JsonKey(request, pk))
        return [_fragment(value)] * len(parents)

    return fetch


def _properties_page(query: JsonQuery, fingerprint: str, slots: Slots) -> Any:
    async def fetch(
        parents: list[Any], context: Context, convert: Convert, own: dict[str, Any]
    ) -> list[Any]:
        # What resolvers/properties.py: properties checks, in the same order.
        order = PROPERTY_ORDERS[own["order_by"].value]
        size = page_size(context, own["first"])
        criteria = property_criteria(own["filter_"])
        after = own["after"]
        after_values = cursor_values(order, after)
        pages = {0: PageParams(size, after_values), **_nested(context, slots, convert)}
        statement, parameters, variant = properties_page_statement(
            context.db, criteria, order=order, after=after_values, limit=size + 1
        )
        keep_bytes = isinstance(context.cache, PassThrough)  # nothing stores it

        async def load(_positions: list[int]) -> list[dict[str, Any]]:
            raw, ids = await json_pages.properties_page_json(
                context.db, query, statement, parameters, order, variant, pages
            )
            return [{"json": raw if keep_bytes else raw.decode(), "ids": ids}]

        key = f"{_prefix(fingerprint, pages)}:{criteria!r}:{order.name}:{size}:{after or ''}"
        (value,) = await context.cache.fetch_many(
            Resource.LIST, [key], load, _page_tags, context.scope
        )
        return [orjson.Fragment(value["json"])] * len(parents)

    return fetch


def _page_tags(_position: int, value: dict[str, Any]) -> list[str]:
    # As resolvers/properties.py tags the page: every property list, and its properties.
    return ["list:properties", *(f"property:{pk}" for pk in value["ids"])]

"""Responses built by PostgreSQL: one statement returns each key's JSON, shaped as selected.

The compiled executor (app/graphql/json_fields.py) describes a selection once per document as
a `Shape` (plain data: which columns, ids, cursors and pages, under which response keys); this
module renders it to SQL once per shape and variant (which pages resume after a cursor), and
returns the JSON text of each key as the driver's bytes (db/engine.py: the json type's binary
codec skips even the str decode), for the caller to embed unparsed (orjson.Fragment).

What comes out must be byte for byte what the standard path writes:
* objects are `row_to_json` of a row whose columns are named by the response keys (compact,
  in selection order); lists and connections are concatenated text (`json_agg` would put a
  newline between items); strings are escaped by PostgreSQL as orjson escapes them;
* global ids are base64url("<Type>:<id>") with padding (app/ids.py), cursors base64url of the
  compact JSON array [order name, values...] without padding (db/keyset.py);
* a value the standard path would refuse (a BIGINT past GraphQL's 32-bit Int, a NULL where the
  schema says non-null) is written as the JSON string "\\u0000" (PostgreSQL text cannot hold
  that character, so no stored value renders to it), and `Unshowable` is raised on the whole
  answer: the caller falls back to the standard path, which reports the error as it always
  did. A stored string that contains the six characters `\\u0000` also trips the check: a
  needless fallback, never a wrong answer.
PostgreSQL only (the caller decides by dialect).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from db import tables
from db.engine import Database
from db.keyset import KeysetOrder
from db.records import PROPERTY_COLUMNS, SALE_COLUMNS, PropertyRecord
from db.repositories.sales import SALES_NEWEST_FIRST


class Unshowable(ValueError):
    """The answer holds a value the standard path would refuse: run the standard path."""


_BAD = "CAST('\"\\u0000\"' AS JSON)"
_BAD_BYTES = b"\\u0000"
_INT32 = (-(2**31), 2**31 - 1)
_DATES = "DATE '0001-01-01' AND DATE '9999-12-31'"
"""The dates Python's `date` holds (what the standard path can show)."""
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")

# --- shapes (plain data, hashable, rendered once) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    column: str
    int32: bool = False
    """A BIGINT shown as GraphQL Int: a value past 32 bits makes the answer unshowable."""
    required: bool = False
    """Non-null in the schema, nullable in the table: a NULL makes the answer unshowable."""


@dataclass(frozen=True, slots=True)
class GlobalId:
    key: str
    type_name: str


@dataclass(frozen=True, slots=True)
class EmptyAsNull:
    key: str
    column: str


@dataclass(frozen=True, slots=True)
class EnumName:
    key: str
    column: str
    names: tuple[tuple[str, str], ...]
    """(stored value, GraphQL name); any other value is null."""


@dataclass(frozen=True, slots=True)
class Constant:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Cursor:
    key: str


@dataclass(frozen=True, slots=True)
class Node:
    key: str
    shape: ObjectShape


@dataclass(frozen=True, slots=True)
class Edges:
    key: str
    fields: tuple[Cursor | Node | Constant, ...]


@dataclass(frozen=True, slots=True)
class Nodes:
    key: str
    shape: ObjectShape


@dataclass(frozen=True, slots=True)
class PageInfo:
    key: str
    fields: tuple[tuple[str, str], ...]
    """(response key, hasNextPage | hasPreviousPage | startCursor | endCursor | =<typename>)."""


@dataclass(frozen=True, slots=True)
class Connection:
    key: str
    relation: str
    """A name of RELATIONS: the child table, how it joins its parent, its order."""
    slot: int
    """Whose page arguments (`PageParams`) this page takes."""
    parts: tuple[Edges | Nodes | PageInfo | Constant, ...]


@dataclass(frozen=True, slots=True)
class ObjectShape:
    table: str
    fields: tuple[Column | GlobalId | EmptyAsNull | EnumName | Constant | Connection, ...]


Shape = ObjectShape | Connection


@dataclass(frozen=True, slots=True)
class PageParams:
    first: int
    after: tuple[Any, ...] | None


@dataclass(frozen=True, slots=True)
class _Relation:
    table: sa.Table
    columns: tuple[str, ...]
    parent_key: str
    """The child column holding the parent's id."""
    order: KeysetOrder[Any]


RELATIONS: dict[str, _Relation] = {
    "sales_of_property": _Relation(
        tables.sales, tuple(c.name for c in SALE_COLUMNS), "property_id", SALES_NEWEST_FIRST
    ),
}
TABLES: dict[str, sa.Table] = {"properties": tables.properties, "sales": tables.sales}


def _is_date(column: Any) -> bool:
    return isinstance(column.type, sa.Date) and not isinstance(column.type, sa.DateTime)


def column_kind(table: str, column: str) -> tuple[str, bool] | None:
    """(int32 | int64 | text | bool | date | other, nullable) of a column the shapes may read."""
    found = TABLES[table].c.get(column)
    if found is None:
        return None
    type_ = found.type
    if isinstance(type_, sa.BigInteger):
        kind = "int64"
    elif isinstance(type_, sa.Integer):
        kind = "int32"
    elif isinstance(type_, sa.Text | sa.String):
        kind = "text"
    elif isinstance(type_, sa.Boolean):
        kind = "bool"
    elif isinstance(type_, sa.Date) and not isinstance(type_, sa.DateTime):
        kind = "date"
    else:
        kind = "other"
    return kind, bool(found.nullable)


def slots_of(shape: Shape) -> list[int]:
    """The slots of the pages nested in `shape` (itself included), in rendering order."""
    found: list[int] = []

    def walk(node: Any) -> None:
        if isinstance(node, Connection):
            found.append(node.slot)
            for part in node.parts:
                walk(part)
        elif isinstance(node, ObjectShape | Edges):
            for field in node.fields:
                walk(field)
        elif isinstance(node, Node | Nodes):
            walk(node.shape)

    walk(shape)
    return found


# --- rendering ---------------------------------------------------------------------------------

_SQL_TYPES = {int: "BIGINT", str: "TEXT"}


def _literal(text: str) -> str:
    """A SQL string literal (colons escaped: the statements are sa.text, where :name binds)."""
    return "'" + text.replace("'", "''").replace(":", "\\:") + "'"


def _json_piece(value: str) -> str:
    return _literal(orjson.dumps(value).decode())


def _ident(key: str) -> str:
    if not _NAME.match(key):
        raise ValueError(f"not a GraphQL name: {key!r}")
    return f'"{key}"'


class _Render:
    def __init__(self, after_given: Mapping[int, bool]) -> None:
        self.after_given = after_given
        self._aliases = 0

    def alias(self, prefix: str) -> str:
        self._aliases += 1
        return f"{prefix}{self._aliases}"

    def object(self, shape: ObjectShape, row: str) -> str:
        table = TABLES[shape.table]
        items = ", ".join(
            f"{self.value(field, row, table)} AS {_ident(field.key)}" for field in shape.fields
        )
        alias = self.alias("o")
        return f"(SELECT row_to_json({alias}) FROM (SELECT {items}) {alias})"

    def value(self, field: Any, row: str, table: sa.Table) -> str:
        if isinstance(field, Column):
            if field.column not in table.c:
                raise ValueError(f"no column {field.column} in {table.name}")
            expression = f"{row}.{field.column}"
            is_date = _is_date(table.c[field.column])
            if not (field.int32 or field.required or is_date):
                return expression
            when_null = _BAD if field.required else "NULL"
            if field.int32:
                low, high = _INT32
                return (
                    f"CASE WHEN {expression} IS NULL THEN {when_null} "
                    f"WHEN {expression} BETWEEN {low} AND {high} THEN to_json({expression}) "
                    f"ELSE {_BAD} END"
                )
            if is_date:  # 'infinity', BC or past 9999: not a date the standard path shows
                return (
                    f"CASE WHEN {expression} IS NULL THEN {when_null} "
                    f"WHEN {expression} BETWEEN {_DATES} THEN to_json({expression}) "
                    f"ELSE {_BAD} END"
                )
            return f"coalesce(to_json({expression}), {_BAD})"
        if isinstance(field, GlobalId):
            if not _NAME.match(field.type_name):
                raise ValueError(field.type_name)
            prefix = _literal(f"{field.type_name}:")
            return (
                f"translate(encode(convert_to({prefix} || {row}.id, 'UTF8'), 'base64'), "
                "E'+/\\n', '-_')"
            )
        if isinstance(field, EmptyAsNull):
            return f"NULLIF({row}.{table.c[field.column].name}, '')"
        if isinstance(field, EnumName):
            cases = " ".join(
                f"WHEN {_literal(stored)} THEN {_literal(name)}" for stored, name in field.names
            )
            return f"CAST(CASE {row}.{table.c[field.column].name} {cases} END AS TEXT)"
        if isinstance(field, Constant):
            return f"CAST({_literal(field.value)} AS TEXT)"
        if isinstance(field, Connection):
            relation = RELATIONS[field.relation]
            return self.connection_subquery(field, f"{row}.id", relation)
        raise TypeError(f"cannot render {field!r}")

    def cursor(self, order: KeysetOrder[Any], row: str) -> str:
        values = " || ',' || ".join(
            f"to_json({row}.{column.name})::text" for column in order.columns
        )
        raw = f"'[' || {_json_piece(order.name)} || ',' || {values} || ']'"
        cursor = (
            f"rtrim(translate(encode(convert_to({raw}, 'UTF8'), 'base64'), E'+/\\n', '-_'), '=')"
        )
        dates = [f"{row}.{c.name} BETWEEN {_DATES}" for c in order.columns if _is_date(c)]
        if not dates:
            return cursor
        # A date Python cannot hold would hide inside the base64: checked outside it (json).
        return f"CASE WHEN {' AND '.join(dates)} THEN to_json({cursor}) ELSE {_BAD} END"

    def after_condition(self, order: KeysetOrder[Any], row: str, slot: int, table: sa.Table) -> str:
        left = ", ".join(f"{row}.{c.name}" for c in order.columns)
        right = ", ".join(
            f"CAST(:ja{slot}_{i} AS {_sql_type(order, i)})" for i in range(len(order.columns))
        )
        return f"({left}) {'<' if order.descending else '>'} ({right})"

    def order_by(self, order: KeysetOrder[Any], row: str) -> str:
        direction = " DESC" if order.descending else ""
        return ", ".join(f"{row}.{c.name}{direction}" for c in order.columns)

    def connection_subquery(
        self, connection: Connection, parent_key: str, relation: _Relation
    ) -> str:
        """The page of `relation`'s rows of one parent, as a JSON-typed scalar subquery."""
        source = self.alias("x")
        rows = self.alias("r")
        slot = connection.slot
        where = [f"{source}.{relation.parent_key} = {parent_key}"]
        if self.after_given[slot]:
            where.append(self.after_condition(relation.order, source, slot, relation.table))
        columns = ", ".join(f"{source}.{name}" for name in relation.columns)
        limited = (
            f"SELECT {columns} FROM {relation.table.name} {source} WHERE {' AND '.join(where)} "
            f"ORDER BY {self.order_by(relation.order, source)} "
            f"LIMIT CAST(:jf{slot} AS INTEGER) + 1"
        )
        numbered = (
            f"SELECT {source}.*, row_number() OVER (ORDER BY "
            f"{self.order_by(relation.order, source)}) AS rn__ FROM ({limited}) {source}"
        )
        body = self.connection_body(connection, rows, relation.order)
        return f"(SELECT CAST({body} AS JSON) FROM ({numbered}) {rows})"

    def connection_body(self, connection: Connection, rows: str, order: KeysetOrder[Any]) -> str:
        """Text of the connection object: aggregates over `rows` (numbered rn__, first+1 at
        most), for the FROM the caller gives."""
        first = f"CAST(:jf{connection.slot} AS INTEGER)"
        shown = f"FILTER (WHERE {rows}.rn__ <= {first})"
        pieces: list[str] = []
        for part in connection.parts:
            key = f"{_json_piece(part.key)} || '\\:'"
            if isinstance(part, Constant):
                pieces.append(f"{key} || {_json_piece(part.value)}")
            elif isinstance(part, Edges):
                item = self.edge(part, rows, order)
                pieces.append(
                    f"{key} || '[' || coalesce(string_agg(({item})::text, ',' ORDER BY "
                    f"{rows}.rn__) {shown}, '') || ']'"
                )
            elif isinstance(part, Nodes):
                item = self.object(part.shape, rows)
                pieces.append(
                    f"{key} || '[' || coalesce(string_agg(({item})::text, ',' ORDER BY "
                    f"{rows}.rn__) {shown}, '') || ']'"
                )
            else:
                pieces.append(f"{key} || {self.page_info(part, connection, rows, order)}")
        joined = " || ',' || ".join(f"({piece})" for piece in pieces)
        return f"('{{' || {joined} || '}}')"

    def edge(self, edges: Edges, rows: str, order: KeysetOrder[Any]) -> str:
        items: list[str] = []
        for field in edges.fields:
            if isinstance(field, Cursor):
                items.append(f"{self.cursor(order, rows)} AS {_ident(field.key)}")
            elif isinstance(field, Node):
                items.append(f"{self.object(field.shape, rows)} AS {_ident(field.key)}")
            else:
                items.append(f"CAST({_literal(field.value)} AS TEXT) AS {_ident(field.key)}")
        alias = self.alias("e")
        return f"(SELECT row_to_json({alias}) FROM (SELECT {', '.join(items)}) {alias})"

    def page_info(
        self, info: PageInfo, connection: Connection, rows: str, order: KeysetOrder[Any]
    ) -> str:
        first = f"CAST(:jf{connection.slot} AS INTEGER)"
        cursor = self.cursor(order, rows)
        pieces: list[str] = []
        for key, what in info.fields:
            if what == "hasNextPage":
                value = f"(count(*) > {first})::text"
            elif what == "hasPreviousPage":
                value = "'true'" if self.after_given[connection.slot] else "'false'"
            elif what == "startCursor":
                value = (
                    f"coalesce(to_json((array_agg({cursor} ORDER BY {rows}.rn__) "
                    f"FILTER (WHERE {rows}.rn__ = 1 AND {rows}.rn__ <= {first}))[1])::text, 'null')"
                )
            elif what == "endCursor":
                value = (
                    f"coalesce(to_json((array_agg({cursor} ORDER BY {rows}.rn__ DESC) "
                    f"FILTER (WHERE {rows}.rn__ <= {first}))[1])::text, 'null')"
                )
            elif what.startswith("="):
                value = _json_piece(what[1:])
            else:
                raise ValueError(what)
            pieces.append(f"{_json_piece(key)} || '\\:' || {value}")
        return "'{' || " + " || ',' || ".join(pieces) + " || '}'"


def _sql_type(order: KeysetOrder[Any], position: int) -> str:
    python_type = order.types[position]
    if python_type in _SQL_TYPES:
        return _SQL_TYPES[python_type]
    return "DATE"


# --- statements --------------------------------------------------------------------------------


class JsonQuery:
    """One shape's statements, built on first use per variant (which pages resume after a
    cursor; the root page's order). Held by the plan of the document it was made for."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.slots = tuple(slots_of(shape))
        self._statements: dict[Any, sa.Executable] = {}

    def _render(self, nested: Mapping[int, PageParams]) -> _Render:
        return _Render({slot: nested[slot].after is not None for slot in self.slots})

    def _variant(self, nested: Mapping[int, PageParams]) -> tuple[bool, ...]:
        return tuple(nested[slot].after is not None for slot in self.slots)

    def statement(self, variant: Any, build: Any) -> Any:
        statement = self._statements.get(variant)
        if statement is None:
            statement = self._statements[variant] = build()
        return statement


def _parameters(nested: Mapping[int, PageParams]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for slot, page in nested.items():
        values[f"jf{slot}"] = page.first
        for index, value in enumerate(page.after or ()):
            values[f"ja{slot}_{index}"] = value
    return values


def _checked(raw: Any) -> bytes:
    data = bytes(raw) if not isinstance(raw, bytes) else raw
    if _BAD_BYTES in data:
        raise Unshowable("a value the schema cannot show")
    return data


async def properties_json_by_id(
    db: Database, query: JsonQuery, ids: Sequence[int], nested: Mapping[int, PageParams]
) -> dict[int, bytes]:
    """Each live property's JSON (`query.shape`, an ObjectShape over properties)."""
    shape = query.shape
    assert isinstance(shape, ObjectShape)
    assert shape.table == "properties"

    def build() -> sa.TextClause:
        render = query._render(nested)
        body = render.object(shape, "p0")
        return sa.text(
            f"SELECT k.key, {body} FROM unnest(CAST(:keys AS BIGINT[])) AS k(key) "
            "JOIN properties p0 ON p0.id = k.key AND p0.deleted_at IS NULL"
        )

    statement = query.statement(("by_id", query._variant(nested)), build)
    params = {"keys": list(ids), **_parameters(nested)}
    rows = await db.fetch_all(statement, params, prepared=True)
    return {row[0]: _checked(row[1]) for row in rows}


async def properties_page_json(
    db: Database,
    query: JsonQuery,
    page: sa.Select[Any],
    page_parameters: Mapping[str, Any],
    order: KeysetOrder[PropertyRecord],
    variant: Any,
    nested: Mapping[int, PageParams],
) -> tuple[bytes, list[int]]:
    """A root page of properties (`page`: the keyset page statement, first + 1 rows) as the
    JSON of `query.shape` (a Connection over properties), and the ids of its edges (the
    cache's tags). The page's own size is slot `query.shape.slot`."""
    shape = query.shape
    assert isinstance(shape, Connection)

    def build() -> sa.Select[Any]:
        render = query._render(nested)
        source = page.subquery("page")
        sort = [source.c[c.name] for c in order.columns]
        rows = sa.select(
            *[source.c[c.name] for c in PROPERTY_COLUMNS],
            sa.func.row_number()
            .over(order_by=[c.desc() if order.descending else c.asc() for c in sort])
            .label("rn__"),
        ).subquery("r0")
        body = render.connection_body(shape, "r0", order)
        first = f"CAST(:jf{shape.slot} AS INTEGER)"
        return sa.select(
            sa.text(f"CAST({body} AS JSON)"),
            sa.text(f"array_agg(r0.id ORDER BY r0.rn__) FILTER (WHERE r0.rn__ <= {first})"),
        ).select_from(rows)

    statement = query.statement(("page", variant, query._variant(nested)), build)
    params = {**page_parameters, **_parameters(nested)}
    rows = await db.fetch_all(statement, params, prepared=True)
    return _checked(rows[0][0]), list(rows[0][1] or ())

"""Running a plan: breadth-first waves of batch resolvers, values shaped straight into JSON.

Everything that needs no I/O (attributes, synchronous resolvers, serializers, lists, objects)
is completed synchronously as soon as its parents are known; each field with a batch resolver
becomes one call for all of its parents at that level, and the calls of one wave run
concurrently. A page of 20 properties with 5 sales each is two waves and two batch calls,
whatever the number of fields selected.

Any deviation from a clean result (a resolver raising, a null in a non-null position, a value
a serializer refuses, variables that do not coerce) raises `Fallback`: the caller then runs the
operation through the standard executor, which reports errors with their paths and codes.
Queries read only, so running one again is safe.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql.execution.values import VariableValues, get_variable_values

from app.context import Context
from app.graphql.plan import (
    Arguments,
    FieldPlan,
    Leaf,
    ListOf,
    ObjectOf,
    OperationPlan,
    convert_field_arguments,
)


class Fallback(Exception):
    """The plan cannot produce a clean result: the standard executor must run the operation."""


@dataclass(slots=True)
class _Batch:
    field: FieldPlan
    parents: list[Any]
    outputs: list[dict[str, Any]]


async def execute_plan(
    plan: OperationPlan,
    schema: strawberry.Schema,
    context: Context,
    variable_inputs: dict[str, Any] | None,
) -> dict[str, Any]:
    variables = _coerce_variables(plan, schema, variable_inputs)
    json_path = context.db.is_postgresql  # JSON built by the database: PostgreSQL only
    data: dict[str, Any] = {}
    batches: list[_Batch] = []
    (root_fields,) = plan.root.fields.values()
    _fill(root_fields, [None], [data], batches)
    while batches:
        wave, batches = batches, []
        if len(wave) == 1:
            results = [await _fetch(wave[0], schema, context, variables, json_path)]
        else:
            results = await asyncio.gather(
                *(_fetch(batch, schema, context, variables, json_path) for batch in wave)
            )
        for batch, values in zip(wave, results, strict=True):
            key = batch.field.key
            if json_path and batch.field.json is not None:
                # Whole values already (orjson.Fragment): nothing below them to complete.
                if not batch.field.completion.nullable and None in values:
                    raise Fallback("null in a non-null object")
                completed = values
            else:
                completed = _complete(batch.field.completion, values, batches)
            for output, value in zip(batch.outputs, completed, strict=True):
                output[key] = value
    return data


def _coerce_variables(
    plan: OperationPlan, schema: strawberry.Schema, inputs: dict[str, Any] | None
) -> VariableValues | None:
    definitions = plan.operation.variable_definitions
    if not definitions:
        return None
    coerced = get_variable_values(schema._schema, definitions, inputs or {})
    if isinstance(coerced, list):
        raise Fallback("variables do not coerce")
    return coerced


async def _fetch(
    batch: _Batch,
    schema: strawberry.Schema,
    context: Context,
    variables: VariableValues | None,
    json_path: bool,
) -> list[Any]:
    field = batch.field
    assert field.batch is not None
    assert field.arguments is not None
    arguments = field.arguments.fixed
    if arguments is None:
        arguments = convert_field_arguments(schema, field.arguments, variables)
    if json_path and field.json is not None:

        def convert(nested: Arguments) -> dict[str, Any]:
            if nested.fixed is not None:
                return nested.fixed
            return convert_field_arguments(schema, nested, variables)

        values = await field.json.fetch(batch.parents, context, convert, arguments)
    else:
        values = await field.batch(batch.parents, context, **arguments)
    if len(values) != len(batch.parents):
        raise Fallback(f"{field.key}: batch returned {len(values)} values")
    return values


def _fill(
    fields: tuple[FieldPlan, ...],
    parents: list[Any],
    outputs: list[dict[str, Any]],
    batches: list[_Batch],
) -> None:
    """Sets every field of `outputs` (one dict per parent), in selection order; fields that
    need a batch get a placeholder now (to keep the order) and a batch in the next wave."""
    for field in fields:
        key = field.key
        if field.get is None:
            for output in outputs:
                output[key] = None
            batches.append(_Batch(field, parents, outputs))
            continue
        get = field.get
        completed = _complete(field.completion, [get(parent) for parent in parents], batches)
        for output, value in zip(outputs, completed, strict=True):
            output[key] = value


def _complete(
    completion: Leaf | ListOf | ObjectOf, values: list[Any], batches: list[_Batch]
) -> list[Any]:
    if type(completion) is Leaf:
        if not completion.nullable and None in values:
            raise Fallback("null in a non-null leaf")
        serialize = completion.serialize
        output_type = completion.output_type
        if output_type is not None:  # most leaves: strings already, passed through
            return [
                value if value is None or type(value) is output_type else serialize(value)
                for value in values
            ]
        return [None if value is None else serialize(value) for value in values]
    if type(completion) is ListOf:
        return _complete_lists(completion, values, batches)
    assert type(completion) is ObjectOf
    return _complete_objects(completion, values, batches)


def _complete_lists(completion: ListOf, values: list[Any], batches: list[_Batch]) -> list[Any]:
    """All items of all lists completed as one flat list (so their fields batch together)."""
    flat: list[Any] = []
    sizes: list[int] = []
    for value in values:
        if value is None:
            if not completion.nullable:
                raise Fallback("null in a non-null list")
            sizes.append(-1)
            continue
        before = len(flat)
        flat.extend(value)
        sizes.append(len(flat) - before)
    items = _complete(completion.item, flat, batches)
    lists: list[Any] = []
    start = 0
    for size in sizes:
        if size < 0:
            lists.append(None)
        else:
            lists.append(items[start : start + size])
            start += size
    return lists


def _complete_objects(completion: ObjectOf, values: list[Any], batches: list[_Batch]) -> list[Any]:
    has_null = None in values
    if has_null and not completion.nullable:
        raise Fallback("null in a non-null object")
    objects: list[dict[str, Any] | None] = [None if v is None else {} for v in values]
    if len(completion.types) == 1:
        (fields,) = completion.fields.values()
        if has_null:
            parents = [value for value in values if value is not None]
            outputs = [output for output in objects if output is not None]
            _fill(fields, parents, outputs, batches)
        else:
            _fill(fields, values, objects, batches)  # type: ignore[arg-type]  # no None here
        return objects
    by_type: dict[str, tuple[list[Any], list[dict[str, Any]]]] = {}
    for value, output in zip(values, objects, strict=True):
        if output is None:
            continue
        parents, outputs = by_type.setdefault(_runtime_type(completion, value), ([], []))
        parents.append(value)
        outputs.append(output)
    for type_name, (parents, outputs) in by_type.items():
        _fill(completion.fields[type_name], parents, outputs, batches)
    return objects


def _runtime_type(completion: ObjectOf, value: Any) -> str:
    for type_ in completion.types:
        assert type_.is_type_of is not None
        if type_.is_type_of(value, None):  # type: ignore[arg-type]  # ours ignore info
            return type_.name
    raise Fallback(f"no type of {completion.types} matches {type(value).__name__}")

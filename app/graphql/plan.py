"""Compiling a query document into a plan: what to fetch and how to shape it, decided once.

The generic executor (graphql-core, under Strawberry) re-derives for every object of every
response which fields to resolve, which resolver, which serializer, and wraps each call in
awaitables. A plan does that work once per document: for every selection it holds the response
key, how to get the value (an attribute, a synchronous resolver of the parent, or a batch
resolver for all parents at once) and how to complete it (serializer, list, object with its own
selections). `app/graphql/run.py` walks it level by level.

The planner fails closed. `compile_operation` returns `NoPlan(reason)` for anything it cannot
prove it answers exactly as Strawberry's executor would, and that executor then runs the
document (slower, never different): syntax and validation errors, mutations and subscriptions,
directives (@skip/@include depend on variables; custom ones on their implementation),
introspection, fields with permission classes or field extensions (checks a plan would skip),
and resolvers that are not declared batched (resolvers/fields.py) unless they are plain
synchronous functions of the parent. A plan is `cacheable` (its response may be stored for
every caller) only if every batched field in it is declared public and cacheable; plain
fields are as public as the object they are read from.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from typing import Any

import orjson
import strawberry
from graphql import (
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    Visitor,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    parse,
    specified_rules,
    validate,
    visit,
)
from graphql.execution.values import get_argument_values
from graphql.language import BREAK
from graphql.utilities import get_operation_ast
from graphql.validation import ASTValidationRule
from strawberry.types.arguments import StrawberryArgument, convert_arguments
from strawberry.types.field import StrawberryField

from app.graphql.json_fields import JsonField, json_alternative
from resolvers.fields import BatchResolver, declaration_of

Serializer = Callable[[Any], Any]
Getter = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Leaf:
    serialize: Serializer
    nullable: bool
    output_type: type | None = None
    """Values of exactly this type are already in output form (str for String, ...)."""


@dataclass(frozen=True, slots=True)
class ListOf:
    item: Completion
    nullable: bool


@dataclass(frozen=True, slots=True)
class ObjectOf:
    """An object value: `fields` per runtime type (one entry unless the type is abstract)."""

    fields: Mapping[str, tuple[FieldPlan, ...]]
    types: tuple[GraphQLObjectType, ...]
    nullable: bool


Completion = Leaf | ListOf | ObjectOf


@dataclass(frozen=True, slots=True)
class Arguments:
    """A field's arguments: coerced per request when they use variables, once when not."""

    definition: GraphQLField
    node: FieldNode
    strawberry_arguments: list[StrawberryArgument]
    fixed: dict[str, Any] | None
    converted: dict[bytes, dict[str, Any]] = dataclass_field(default_factory=dict)
    """Conversions by coerced value (variables repeat: a locality, a page size)."""


@dataclass(frozen=True, slots=True)
class FieldPlan:
    key: str
    """The response key (the alias, or the field name)."""
    get: Getter | None
    """Value from one parent (attribute, synchronous resolver, constant); None for `batch`."""
    batch: BatchResolver | None
    arguments: Arguments | None
    completion: Completion
    json: JsonField | None = None
    """On PostgreSQL: the whole value of each parent as JSON built by the database
    (app/graphql/json_fields.py), in place of `batch` and the fields below it."""


@dataclass(frozen=True, slots=True)
class OperationPlan:
    operation: OperationDefinitionNode
    root: ObjectOf
    cacheable: bool
    """Every batched field is public and cacheable: the response may serve any caller."""


@dataclass(frozen=True, slots=True)
class NoPlan:
    """Why the standard executor runs this document (counted per reason)."""

    reason: str


class Unsupported(Exception):
    """The document needs something a plan does not cover: run it the standard way."""


class _HasDirective(Visitor):
    found = False

    def enter_directive(self, _node: DirectiveNode, *_args: object) -> object:
        self.found = True
        return BREAK


def compile_operation(
    schema: strawberry.Schema,
    query: str,
    operation_name: str | None,
    validation_rules: Sequence[type[ASTValidationRule]] = (),
) -> OperationPlan | NoPlan:
    """The plan of a valid query operation, or why the standard executor must run it
    (including every document with a syntax or validation error: it reports those).
    `validation_rules`: the rules schema extensions add to graphql-core's."""
    graphql_schema = schema._schema
    try:
        document = parse(query)
    except GraphQLError:
        return NoPlan("syntax error")
    if validate(graphql_schema, document, [*specified_rules, *validation_rules]):
        return NoPlan("validation error")
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return NoPlan("no such operation")
    if operation.operation is not OperationType.QUERY:
        return NoPlan(operation.operation.value)
    if _uses_directives(document):
        return NoPlan("directives")
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    query_type = graphql_schema.query_type
    assert query_type is not None
    compiler = _Compiler(schema, graphql_schema, fragments)
    try:
        fields = compiler.object_fields(query_type, [operation.selection_set])
    except Unsupported as unsupported:
        return NoPlan(str(unsupported))
    return OperationPlan(
        operation=operation,
        root=ObjectOf(
            fields={query_type.name: _json_only_when_alone(fields)},
            types=(query_type,),
            nullable=False,
        ),
        cacheable=compiler.cacheable,
    )


def _json_only_when_alone(fields: tuple[FieldPlan, ...]) -> tuple[FieldPlan, ...]:
    """The JSON path for the operation's one batched root field, or for none.

    A JSON batch is a statement of its own: beside other root fields (two `property(id)`,
    which the standard path reads in one batch) it could cost more statements than the
    standard executor, never fewer. Alone, it is one statement where the standard path
    needs at least one."""
    batched = [field for field in fields if field.get is None]
    if len(batched) == 1 and batched[0].json is not None:
        return fields
    return tuple(replace(field, json=None) if field.json else field for field in fields)


def _uses_directives(document: DocumentNode) -> bool:
    visitor = _HasDirective()
    visit(document, visitor)
    return visitor.found


class _Compiler:
    def __init__(
        self,
        schema: strawberry.Schema,
        graphql_schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
    ) -> None:
        self.schema = schema
        self.graphql_schema = graphql_schema
        self.fragments = fragments
        self.cacheable = True
        """False once a field that depends on the caller (or is volatile) is planned."""

    def object_fields(
        self, type_: GraphQLObjectType, selection_sets: Sequence[SelectionSetNode]
    ) -> tuple[FieldPlan, ...]:
        grouped: dict[str, list[FieldNode]] = {}
        for selection_set in selection_sets:
            self._collect(type_, selection_set, grouped)
        return tuple(self._field(type_, key, nodes) for key, nodes in grouped.items())

    def collect(
        self,
        type_: GraphQLObjectType,
        selection_set: SelectionSetNode,
        grouped: dict[str, list[FieldNode]],
    ) -> None:
        self._collect(type_, selection_set, grouped)

    def make_arguments(
        self, definition: GraphQLField, node: FieldNode, field: StrawberryField
    ) -> Arguments:
        return self._arguments(definition, node, field)

    def _collect(
        self,
        type_: GraphQLObjectType,
        selection_set: SelectionSetNode,
        grouped: dict[str, list[FieldNode]],
    ) -> None:
        """Fields by response key in document order, through fragments that apply to type_."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or self._applies(condition.name.value, type_):
                    self._collect(type_, selection.selection_set, grouped)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                if self._applies(fragment.type_condition.name.value, type_):
                    self._collect(type_, fragment.selection_set, grouped)

    def _applies(self, condition_name: str, type_: GraphQLObjectType) -> bool:
        condition = self.graphql_schema.get_type(condition_name)
        if condition is type_:
            return True
        return is_abstract_type(condition) and self.graphql_schema.is_sub_type(condition, type_)

    def _field(self, parent: GraphQLObjectType, key: str, nodes: list[FieldNode]) -> FieldPlan:
        name = nodes[0].name.value
        if name == "__typename":
            type_name = parent.name
            return FieldPlan(
                key=key,
                get=lambda _parent: type_name,
                batch=None,
                arguments=None,
                completion=Leaf(serialize=_identity, nullable=False),
            )
        if name.startswith("__"):
            raise Unsupported("introspection")
        definition = parent.fields[name]
        field: StrawberryField = definition.extensions["strawberry-definition"]
        if field.permission_classes or field.extensions:
            # Permission checks and field extensions run inside Strawberry's resolver
            # wrapper, which a plan does not call.
            raise Unsupported(f"{parent.name}.{name} has permission classes or extensions")
        completion = self._completion(definition.type, nodes)
        resolver = field.base_resolver
        if resolver is None:
            return FieldPlan(
                key=key,
                get=operator.attrgetter(field.python_name),
                batch=None,
                arguments=None,
                completion=completion,
            )
        function = resolver.wrapped_func
        if isinstance(function, staticmethod | classmethod):
            raise Unsupported(f"{parent.name}.{name} resolves with a method")
        declared = declaration_of(function)
        if declared is not None:
            self.cacheable = self.cacheable and declared.cacheable
            return FieldPlan(
                key=key,
                get=None,
                batch=declared.batch,
                arguments=self._arguments(definition, nodes[0], field),
                completion=completion,
                json=json_alternative(
                    self, self.graphql_schema, parent, definition, nodes, function
                ),
            )
        if resolver.is_async or field.arguments or resolver.info_parameter is not None:
            raise Unsupported(f"{parent.name}.{name} is not declared batched")
        return FieldPlan(
            key=key,
            get=_root_function(function),
            batch=None,
            arguments=None,
            completion=completion,
        )

    def _arguments(
        self, definition: GraphQLField, node: FieldNode, field: StrawberryField
    ) -> Arguments:
        arguments = Arguments(
            definition=definition, node=node, strawberry_arguments=field.arguments, fixed=None
        )
        if _uses_variables(node):
            return arguments
        try:
            fixed = convert_field_arguments(self.schema, arguments, None)
        except Exception:  # a literal the argument's own conversion refuses
            # The reason names the field, not the literal: reasons are counted, and a count
            # keyed by what clients send would grow without bound.
            raise Unsupported(f"an argument of {node.name.value} does not convert") from None
        return Arguments(
            definition=definition, node=node, strawberry_arguments=field.arguments, fixed=fixed
        )

    def _completion(self, type_: GraphQLOutputType, nodes: list[FieldNode]) -> Completion:
        nullable = not is_non_null_type(type_)
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if is_list_type(inner):
            assert isinstance(inner, GraphQLList)
            return ListOf(item=self._completion(inner.of_type, nodes), nullable=nullable)
        if is_leaf_type(inner):
            return Leaf(
                serialize=_serializer(inner),
                nullable=nullable,
                output_type=_OUTPUT_TYPES.get(inner),
            )
        named = get_named_type(inner)
        selection_sets = [node.selection_set for node in nodes if node.selection_set]
        if is_object_type(named):
            assert isinstance(named, GraphQLObjectType)
            possible: tuple[GraphQLObjectType, ...] = (named,)
        else:
            possible = tuple(self.graphql_schema.get_possible_types(named))  # type: ignore[arg-type]
            if any(type_.is_type_of is None for type_ in possible):
                raise Unsupported(f"{named} has a type without is_type_of")
        return ObjectOf(
            fields={t.name: self.object_fields(t, selection_sets) for t in possible},
            types=possible,
            nullable=nullable,
        )


CONVERSIONS_KEPT = 256


def convert_field_arguments(
    schema: strawberry.Schema, arguments: Arguments, variables: Any
) -> dict[str, Any]:
    """The resolver's keyword arguments, exactly as Strawberry would pass them.

    Strawberry's conversion builds input objects field by field; the same coerced values
    give the same (never modified) objects, so conversions are kept per coerced value."""
    raw = get_argument_values(arguments.definition, arguments.node, variables)
    try:
        key = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a value orjson cannot key on: convert every time
        key = None
    if key is not None and (kept := arguments.converted.get(key)) is not None:
        return kept
    converted = convert_arguments(
        raw,
        arguments.strawberry_arguments,
        scalar_registry=schema.schema_converter.scalar_registry,
        config=schema.config,
    )
    if key is not None:
        if len(arguments.converted) >= CONVERSIONS_KEPT:
            arguments.converted.clear()
        arguments.converted[key] = converted
    return converted


def _uses_variables(node: FieldNode) -> bool:
    found = False

    class _Finder(Visitor):
        def enter_variable(self, _node: VariableNode, *_args: object) -> object:
            nonlocal found
            found = True
            return BREAK

    for argument in node.arguments or ():
        visit(argument, _Finder())
    return found


def _root_function(function: Callable[..., Any]) -> Getter:
    if inspect.signature(function).parameters:
        return function
    return lambda _parent: function()


def _identity(value: Any) -> Any:
    return value


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
# Leaf types whose values pass through unchanged when already of this Python type (Int is
# not here: it needs its range check).
_OUTPUT_TYPES: dict[Any, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


def _serializer(type_: Any) -> Serializer:
    """The type's own serializer, short-circuited for values already in their output form
    (the common case); anything else goes through it and fails exactly as it would."""
    serialize: Serializer = type_.serialize
    if type_ is GraphQLString or type_ is GraphQLID:
        return lambda value: value if type(value) is str else serialize(value)
    if type_ is GraphQLInt:
        return lambda value: (
            value if type(value) is int and _INT_MIN <= value <= _INT_MAX else serialize(value)
        )
    if type_ is GraphQLFloat:
        return lambda value: (
            value if type(value) is float and math.isfinite(value) else serialize(value)
        )
    if type_ is GraphQLBoolean:
        return lambda value: value if type(value) is bool else serialize(value)
    return serialize

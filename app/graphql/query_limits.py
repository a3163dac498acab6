"""Measures a GraphQL document against a role's limits before anything executes.

The lexer's pass counts the document's tokens and its directives (every `@`: unknown ones
and those in parts that never run count, since validation reports an error for each). One
walk over the chosen operation, fragments inlined, measures depth, aliases, field
selections (duplicates included), the directives it applies and cost. Cost is what the
answer may hold: a field inside connections costs the product of their page sizes (`first`:
the literal, the variable's value, or the argument's default), so nested pages are priced as
the rows they fetch. The walk stops at the first limit exceeded, so a fragment bomb costs at
most `max_fields` steps. Documents the parser rejects, or that name unknown fields, pass
through: validation reports those with its usual errors (at most MAX_VALIDATION_ERRORS).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Source,
    TokenKind,
    VariableNode,
    get_named_type,
    parse,
)
from graphql.language import Lexer

from app.settings.query_limits import QueryLimits

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
MAX_INT = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Violation:
    limit: str
    value: int
    maximum: int

    def message(self, role: str) -> str:
        what = _DESCRIPTIONS[self.limit]
        return (
            f"Query refused: {what} {self.value} exceeds the limit of {self.maximum} "
            f"for {role} clients."
        )


_DESCRIPTIONS = {
    "max_query_bytes": "its size in bytes",
    "max_tokens": "its token count",
    "max_depth": "its depth",
    "max_aliases": "its alias count",
    "max_fields": "its field count",
    "max_directives": "its directive count",
    "max_cost": "its cost (objects its pages may return)",
    "max_batch": "the number of operations in the request",
}


@dataclass(frozen=True, slots=True)
class Measure:
    violation: Violation | None
    """The first limit exceeded, or None: the operation is admitted."""
    cost: int
    """The operation's cost (objects its pages may return); when refused, the cost measured
    until the walk stopped."""
    operation_type: str | None = None
    """query, mutation or subscription: the chosen operation's (None: not parsed, no such
    operation, or refused before the parse). Logs and metrics label the request with it."""
    operation_name: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    tokens: int
    document: DocumentNode | None
    """None when the text does not parse (the executor reports the syntax error)."""
    directives: int = 0
    """`@` tokens among the tokens counted."""


_UNMEASURED = Measure(None, 0)
"""A document that does not parse, or names no operation of it: validation reports it."""


class _Exceeded(Exception):
    def __init__(self, violation: Violation) -> None:
        self.violation = violation


class QueryAnalyzer:
    def __init__(self, schema: GraphQLSchema, *, default_page_size: int, max_tokens: int) -> None:
        self.schema = schema
        self.default_page_size = default_page_size
        self.max_tokens = max_tokens
        """Lexing stops one past this (the largest limit of any role)."""
        self._parsed: OrderedDict[str, ParsedDocument] = OrderedDict()
        self._measured: OrderedDict[tuple[str, str | None, QueryLimits], Measure] = OrderedDict()

    def check(
        self,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        limits: QueryLimits,
    ) -> Violation | None:
        return self.measure(query, operation_name, variables, limits).violation

    def measure(
        self,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        limits: QueryLimits,
    ) -> Measure:
        """The first limit the operation exceeds (if any) and its cost, which the gate
        reports (`graphql_query_cost`) without walking the document again."""
        # UTF-8 takes at most 4 bytes a character: short documents need no encoding to size.
        size = len(query.encode()) if len(query) * 4 > limits.max_query_bytes else len(query)
        if size > limits.max_query_bytes:
            return Measure(Violation("max_query_bytes", size, limits.max_query_bytes), 0)
        # Most requests repeat a document whose measure does not depend on its variables:
        # walk it once per role's limits.
        key = (query, operation_name, limits)
        known = self._measured.get(key)
        if known is not None:
            self._measured.move_to_end(key)
            return known
        measure, used_variables = self._measure(query, operation_name, variables, limits)
        if not used_variables:
            self._measured[key] = measure
            if len(self._measured) > 1024:
                self._measured.popitem(last=False)
        return measure

    def _measure(
        self,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        limits: QueryLimits,
    ) -> tuple[Measure, bool]:
        """(the measure, whether a variable's value was consulted)."""
        parsed = self.parse(query)
        if parsed.tokens > limits.max_tokens:
            return Measure(Violation("max_tokens", parsed.tokens, limits.max_tokens), 0), False
        if parsed.directives > limits.max_directives:
            violation = Violation("max_directives", parsed.directives, limits.max_directives)
            return Measure(violation, 0), False
        if parsed.document is None:
            return _UNMEASURED, False
        operation, fragments = _operation(parsed.document, operation_name)
        if operation is None:
            return _UNMEASURED, False
        root = _root_type(self.schema, operation.operation)
        walk = _Walk(self, limits, fragments, variables or {})
        kind = operation.operation.value
        name = operation.name.value if operation.name is not None else None
        try:
            walk.directives(len(operation.directives or ()))
            walk.selection_set(operation.selection_set, root, 1, 1, frozenset())
        except _Exceeded as exceeded:
            return Measure(exceeded.violation, walk.cost, kind, name), walk.used_variables
        return Measure(None, walk.cost, kind, name), walk.used_variables

    def selection_problem(self, query: str, operation_name: str | None) -> str | None:
        """What is wrong with choosing the operation (None when it can be chosen, or when the
        document does not parse: the executor reports that)."""
        document = self.parse(query).document
        if document is None:
            return None
        names = [
            d.name.value if d.name else None
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
        ]
        if operation_name is None:
            if len(names) > 1:
                return "The document holds several operations: name one in `operationName`."
            return None
        if operation_name not in names:
            return f"The document has no operation named {operation_name!r}."
        return None

    def is_mutation(self, query: str, operation_name: str | None) -> bool:
        operation = self.operation(query, operation_name)
        return operation is not None and operation.operation is OperationType.MUTATION

    def operation(self, query: str, operation_name: str | None) -> OperationDefinitionNode | None:
        """The operation the request chooses (None when the document does not parse or has
        no such operation), from the parse the limits cache: logs and spans name it."""
        document = self.parse(query).document
        if document is None:
            return None
        return _operation(document, operation_name)[0]

    def parse(self, query: str) -> ParsedDocument:
        found = self._parsed.get(query)
        if found is not None:
            self._parsed.move_to_end(query)
            return found
        parsed = self._parse(query)
        self._parsed[query] = parsed
        if len(self._parsed) > 1024:
            self._parsed.popitem(last=False)
        return parsed

    def _parse(self, query: str) -> ParsedDocument:
        try:
            tokens, directives = _count_tokens(query, self.max_tokens + 1)
        except GraphQLError:
            return ParsedDocument(0, None)
        if tokens > self.max_tokens:
            return ParsedDocument(tokens, None, directives)
        try:
            return ParsedDocument(tokens, parse(query, no_location=True), directives)
        except GraphQLError:
            return ParsedDocument(tokens, None, directives)


def _count_tokens(query: str, cap: int) -> tuple[int, int]:
    """(tokens, `@` tokens among them), counting stops at `cap` tokens. In an executable
    document each `@` begins a directive."""
    lexer = Lexer(Source(query))
    count = directives = 0
    while count < cap:
        kind = lexer.advance().kind
        if kind is TokenKind.EOF:
            break
        if kind is TokenKind.AT:
            directives += 1
        count += 1
    return count, directives


def _operation(
    document: DocumentNode, name: str | None
) -> tuple[OperationDefinitionNode | None, dict[str, FragmentDefinitionNode]]:
    operations = []
    fragments: dict[str, FragmentDefinitionNode] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            operations.append(definition)
        elif isinstance(definition, FragmentDefinitionNode):
            fragments[definition.name.value] = definition
    if name is None:
        return (operations[0] if len(operations) == 1 else None), fragments
    for operation in operations:
        if operation.name is not None and operation.name.value == name:
            return operation, fragments
    return None, fragments


def _root_type(schema: GraphQLSchema, operation: OperationType) -> GraphQLNamedType | None:
    if operation is OperationType.QUERY:
        return schema.query_type
    if operation is OperationType.MUTATION:
        return schema.mutation_type
    return schema.subscription_type


class _Walk:
    def __init__(
        self,
        analyzer: QueryAnalyzer,
        limits: QueryLimits,
        fragments: dict[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.analyzer = analyzer
        self.limits = limits
        self.fragments = fragments
        self.variables = variables
        self.fields = self.aliases = self.directive_count = self.cost = 0
        self.used_variables = False

    def _bump(self, limit: str, value: int, maximum: int) -> None:
        if value > maximum:
            raise _Exceeded(Violation(limit, value, maximum))

    def directives(self, count: int) -> None:
        self.directive_count += count
        self._bump("max_directives", self.directive_count, self.limits.max_directives)

    def selection_set(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType | None,
        depth: int,
        multiplier: int,
        spreading: frozenset[str],
    ) -> None:
        for selection in selection_set.selections:
            self.directives(len(selection.directives or ()))
            if isinstance(selection, FieldNode):
                self.field(selection, parent, depth, multiplier, spreading)
            elif isinstance(selection, InlineFragmentNode):
                condition = parent
                if selection.type_condition is not None:
                    condition = self.analyzer.schema.get_type(selection.type_condition.name.value)
                self.selection_set(selection.selection_set, condition, depth, multiplier, spreading)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in spreading:  # unknown or cyclic: validation's
                    continue
                condition = self.analyzer.schema.get_type(fragment.type_condition.name.value)
                self.directives(len(fragment.directives or ()))
                self.selection_set(
                    fragment.selection_set, condition, depth, multiplier, spreading | {name}
                )

    def field(
        self,
        node: FieldNode,
        parent: GraphQLNamedType | None,
        depth: int,
        multiplier: int,
        spreading: frozenset[str],
    ) -> None:
        self.fields += 1
        self._bump("max_fields", self.fields, self.limits.max_fields)
        if node.alias is not None:
            self.aliases += 1
            self._bump("max_aliases", self.aliases, self.limits.max_aliases)
        self._bump("max_depth", depth, self.limits.max_depth)
        self.cost += multiplier
        self._bump("max_cost", self.cost, self.limits.max_cost)
        if node.selection_set is None:
            return
        definition = _field(parent, node.name.value)
        child_type = get_named_type(definition.type) if definition is not None else None
        if node.name.value in INTROSPECTION_ROOTS:
            # Schema documents nest deeply by nature (GraphiQL's own query has depth 13);
            # count their fields and cost, not their depth. Prod refuses introspection.
            depth = -self.limits.max_depth * 4
        self.selection_set(
            node.selection_set,
            child_type,
            depth + 1,
            multiplier * self._page_size(node, definition),
            spreading,
        )

    def _page_size(self, node: FieldNode, definition: GraphQLField | None) -> int:
        if definition is None or "first" not in definition.args:
            return 1
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            # A value that is no GraphQL Int is left to validation and coercion, which say
            # so in their own words; the argument's default stands in for it here.
            value = argument.value
            if isinstance(value, IntValueNode) and 0 <= int(value.value) <= MAX_INT:
                return int(value.value)
            if isinstance(value, VariableNode):
                self.used_variables = True
                given = self.variables.get(value.name.value)
                if isinstance(given, int) and not isinstance(given, bool) and 0 <= given <= MAX_INT:
                    return given
            break
        default = definition.args["first"].default_value
        if isinstance(default, int):  # Undefined when the argument has no default
            return default
        return self.analyzer.default_page_size


def _field(parent: GraphQLNamedType | None, name: str) -> GraphQLField | None:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        found: GraphQLField | None = parent.fields.get(name)
        return found
    return None

"""Introspection off, for the prod profile.

`__schema` is refused by validation. `__type(name:)` answers null for every name: a GraphQL
over HTTP client (and the graphql-http audit) may ask it, and null is what an unknown type
gives, so nothing about the schema is revealed and nothing errors. graphql-core's `__type`
field is one shared object; its resolver is wrapped once to ask the operation's context.
"""

from __future__ import annotations

from typing import Any

from graphql import FieldNode, GraphQLError, TypeMetaFieldDef, ValidationRule

_resolve_type = TypeMetaFieldDef.resolve


class NoSchemaIntrospection(ValidationRule):
    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if node.name.value == "__schema":
            self.report_error(GraphQLError("GraphQL introspection is disabled.", node))


def _type_unless_hidden(source: Any, info: Any, **arguments: Any) -> Any:
    if getattr(info.context, "introspection", True) is False:
        return None
    assert _resolve_type is not None
    return _resolve_type(source, info, **arguments)


TypeMetaFieldDef.resolve = _type_unless_hidden

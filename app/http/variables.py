"""Which argument a bad variable was given to.

graphql-core says "Variable '$d' has invalid value: Value cannot represent a Date: ..." and
names the variable only; the document (the error's source) says where `$d` is used:
"Variable '$d' (argument `from` of `stats`) has invalid value: ...".
"""

from __future__ import annotations

import re
from typing import Any

from graphql import (
    ArgumentNode,
    DirectiveNode,
    FieldNode,
    GraphQLError,
    ObjectFieldNode,
    VariableNode,
    Visitor,
    parse,
    visit,
)

_VARIABLE = re.compile(r"Variable '\$(\w+)'")


class _VariableUses(Visitor):
    """The arguments (and input fields below them) where one variable is used."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.owners: list[str] = []  # enclosing fields and directives
        self.path: list[str] = []  # argument, then input fields
        self.found: list[tuple[str, str]] = []  # (argument path, owner)

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        self.owners.append(f"`{node.name.value}`")

    def leave_field(self, *_: Any) -> None:
        self.owners.pop()

    def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
        self.owners.append(f"@{node.name.value}")

    def leave_directive(self, *_: Any) -> None:
        self.owners.pop()

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        self.path.append(node.name.value)

    def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
        self.path.append(node.name.value)

    def leave_argument(self, *_: Any) -> None:
        self.path.pop()

    leave_object_field = leave_argument

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        use = (".".join(self.path), self.owners[-1] if self.owners else "")
        if node.name.value == self.name and self.path and use not in self.found:
            self.found.append(use)


def name_the_argument(error: GraphQLError, message: str, extensions: dict[str, Any]) -> str:
    """`message` naming the arguments its variable is given to, and `extensions.argument`
    set when that is one argument (as the resolvers' own BAD_USER_INPUT errors do)."""
    found = _VARIABLE.match(error.message)
    if found is None or error.source is None:
        return message
    uses = _VariableUses(found[1])
    visit(parse(error.source, no_location=True), uses)
    if not uses.found:
        return message
    if len(uses.found) == 1:
        extensions["argument"] = uses.found[0][0]
    where = ", ".join(f"argument `{path}` of {owner}" for path, owner in uses.found)
    return message.replace(found[0], f"{found[0]} ({where})", 1)

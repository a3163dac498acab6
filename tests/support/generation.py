"""Generated GraphQL requests: hypothesis-graphql documents from the schema's SDL, with
argument values that reach the test data as often as they are refused, and about half of
them with their arguments hoisted into variables. Derandomized: the same seed gives the same
requests on every run (tests/test_fuzz.py, tests/test_differential_fuzz.py).
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import multiprocessing
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import graphql
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, queries

from schema import build_schema


def schema_sdl() -> str:
    return build_schema(count_statements=False).as_str()


# ------------------------------------------------------------------ generation

Json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _string(values: st.SearchStrategy[str]) -> st.SearchStrategy[graphql.ValueNode]:
    return values.map(lambda value: graphql.StringValueNode(value=value))


def scalar_values() -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    """Argument values that reach the database as often as they are refused: ids of rows that
    exist in the slice (and some that do not), page sizes mostly within the limits, the slice's
    names and postcodes, real and impossible dates; junk of every scalar besides."""
    global_ids = st.builds(
        lambda type_name, pk: base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode(),
        st.sampled_from(["Property", "Sale", "Locality", "Nope"]),
        st.integers(-1, 3000),
    )
    words = st.sampled_from(
        ["TEMPE", "Erskineville", "ABERDARE", "branxton", "2044", "2043", "2325", "2335", "R2", ""]
    )
    return {
        "ID": _string(st.one_of(global_ids, global_ids, st.text(max_size=12))),
        "Int": st.one_of(
            st.integers(0, 5),
            st.integers(0, 5),
            st.integers(0, 101),
            st.integers(-(2**31), 2**31 - 1),
        ).map(lambda value: graphql.IntValueNode(value=str(value))),
        "String": _string(st.one_of(words, words, st.text(max_size=16))),
        "Date": _string(
            st.one_of(
                st.dates(date(1990, 1, 1), date(2030, 12, 31)).map(date.isoformat),
                st.dates(date(1, 1, 1), date(9999, 12, 31)).map(date.isoformat),
                st.text(max_size=12),
            )
        ),
        "DateTime": _string(
            st.one_of(
                st.datetimes(
                    datetime(2000, 1, 1), datetime(2030, 12, 31), timezones=st.just(UTC)
                ).map(datetime.isoformat),
                st.text(max_size=12),
            )
        ),
    }


def mostly_valid_values() -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    """Argument values most of which a resolver accepts (ids of the three Node types, the
    first ones of the slice or just past them, pages of 1 to 5, the slice's names and
    postcodes, dates within the data), with a little junk: documents that mostly get a clean
    answer, so they exercise what a plan does rather than its way out."""
    global_ids = st.builds(
        lambda type_name, pk: base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode(),
        st.sampled_from(["Property", "Property", "Sale", "Locality"]),
        st.integers(1, 400),
    )
    words = st.sampled_from(["TEMPE", "Erskineville", "ABERDARE", "branxton", "T", "ER"])
    postcodes = st.sampled_from(["2044", "2043", "2325", "2335"])
    return {
        "ID": _string(global_ids),
        "Int": st.one_of(st.integers(1, 5), st.integers(0, 101)).map(
            lambda value: graphql.IntValueNode(value=str(value))
        ),
        "String": _string(st.one_of(words, postcodes)),
        "Date": _string(st.dates(date(2001, 1, 1), date(2024, 12, 31)).map(date.isoformat)),
        "DateTime": _string(
            st.datetimes(datetime(2020, 1, 1), datetime(2026, 12, 1), timezones=st.just(UTC)).map(
                datetime.isoformat
            )
        ),
    }


class _WithoutCursors(graphql.Visitor):
    """Drops `after:` arguments: a generated string is never a cursor, and every field with
    one would answer an error."""

    def enter_argument(self, node: graphql.ArgumentNode, *_args: Any) -> object:
        return graphql.REMOVE if node.name.value == "after" else None


class _Hoist(graphql.Visitor):
    """Moves every argument literal into a variable of the argument's declared type."""

    def __init__(self, type_info: graphql.TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.variables: dict[str, Any] = {}
        self.definitions: list[graphql.VariableDefinitionNode] = []

    def enter_operation_definition(self, *_args: Any) -> None:
        self.definitions = []

    def leave_operation_definition(
        self, node: graphql.OperationDefinitionNode, *_args: Any
    ) -> graphql.OperationDefinitionNode:
        return graphql.OperationDefinitionNode(
            operation=node.operation,
            name=node.name,
            directives=node.directives,
            selection_set=node.selection_set,
            variable_definitions=(*(node.variable_definitions or ()), *self.definitions),
        )

    def enter_argument(
        self, node: graphql.ArgumentNode, *_args: Any
    ) -> graphql.ArgumentNode | None:
        argument = self.type_info.get_argument()
        if argument is None or isinstance(node.value, graphql.VariableNode):
            return None  # an unknown argument (a negative example): left as it is
        value = graphql.value_from_ast_untyped(node.value)
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            return None  # a float literal past JSON's range (1e400): left as a literal
        name = f"v{len(self.variables)}"
        self.variables[name] = value
        variable = graphql.VariableNode(name=graphql.NameNode(value=name))
        self.definitions.append(
            graphql.VariableDefinitionNode(
                variable=variable, type=graphql.parse_type(str(argument.type)), directives=()
            )
        )
        return graphql.ArgumentNode(name=node.name, value=variable)


def hoisted(
    schema: graphql.GraphQLSchema, document: graphql.DocumentNode
) -> tuple[str, dict[str, Any]]:
    type_info = graphql.TypeInfo(schema)
    hoist = _Hoist(type_info)
    edited = graphql.visit(document, graphql.TypeInfoVisitor(type_info, hoist))
    return graphql.print_ast(edited), hoist.variables


def generate_payloads(
    seed_: int,
    count: int,
    *,
    queries_only: bool = False,
    root_fields: Iterable[str] | None = None,
    junk_share: bool = True,
    negative: bool = True,
    values: dict[str, st.SearchStrategy[graphql.ValueNode]] | None = None,
    cursors: bool = True,
) -> list[dict[str, Any]]:
    """`count` request payloads, the same for the same seed on every run: valid documents and
    documents with one schema violation each, queries and mutations (`queries_only`: queries
    only, and only of `root_fields` when given; `junk_share`: one in twenty carries junk in
    `operationName` or `extensions`; `negative=False`: valid documents only; `values`: the
    argument values (default `scalar_values()`); `cursors=False`: no `after:` arguments)."""
    schema = graphql.build_schema(schema_sdl())
    custom = values if values is not None else scalar_values()
    fields = list(root_fields) if root_fields is not None else None
    strategy = queries if queries_only else from_schema
    documents = strategy(schema, fields=fields, custom_scalars=custom, print_ast=_document)
    if negative:
        documents |= strategy(
            schema, fields=fields, custom_scalars=custom, print_ast=_document, mode=Mode.NEGATIVE
        )

    @st.composite
    def payloads(draw: st.DrawFn) -> dict[str, Any]:
        document = draw(documents)
        if not cursors:
            document = graphql.visit(document, _WithoutCursors())
        payload: dict[str, Any]
        if draw(st.booleans()):
            query, variables = hoisted(schema, document)
            if variables and draw(st.integers(0, 9)) == 7:  # a variable of the wrong shape
                variables[draw(st.sampled_from(sorted(variables)))] = draw(Json)
            payload = {"query": query, "variables": variables}
        else:
            payload = {"query": graphql.print_ast(document)}
        if junk_share and draw(st.integers(0, 19)) == 13:  # 1 in 20 (hypothesis favours 0)
            payload["operationName"] = draw(Json)
        if junk_share and draw(st.integers(0, 19)) == 13:  # 1 in 20 (hypothesis favours 0)
            payload["extensions"] = draw(Json)
        return payload

    generated: list[dict[str, Any]] = []

    @seed(seed_)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(payloads())
    def collect(payload: dict[str, Any]) -> None:
        generated.append(payload)

    collect()
    return generated


def _document(document: graphql.DocumentNode) -> graphql.DocumentNode:
    return document


def generate(count: int) -> list[dict[str, Any]]:
    """Half here (queries and mutations), half in a second process at the same time (queries
    only: most mutations need a credential, and with a drawn root field each, anonymous
    refusals would crowd out the answers), as hypothesis-graphql draws about 30 ms of CPU per
    operation: 2,000 in one process would take a minute."""
    first = count // 2
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        other = pool.submit(generate_payloads, 2, count - first, queries_only=True)
        mine = generate_payloads(1, first)
        return mine + other.result(timeout=300)

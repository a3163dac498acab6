"""graphql-cop's checks against `propintel serve` on the prod profile: no finding (issue 13).

graphql-cop (github.com/dolevf/graphql-cop) is not on any registry this project installs from
(PyPI's `graphql-cop` 0.0.1 is an empty name placeholder), so this module RESTATES it: each
test sends the request of one of its checks, as it sends it, and applies that check's verdict,
as its source words it. Restated from graphql-cop 1.14, its `main` branch: `graphql-cop.py`
at commit d19d269 (the 13 checks it runs, in this order, after `is_graphql`), `lib/utils.py`
at 93b8787 (`graph_query` POSTs `{"query": ..., "operationName": "cop"}` as JSON, a batch as
a JSON array of ten `{"query": ...}`; `request` sends GETs and form POSTs), and the 13
modules of `lib/tests/` it imports, as that version has them (read from stored copies of the
repository: their payloads, titles and verdicts; their own commits were not recorded).
`test_directive_overloading_ladder` restates the later revision of
`dos_directive_overloading.py` on `main`, which replaces the ten `@aa` with `@skip(if:true)`
repeated 0, 10, 100, 500 and 1000 times and reads a limit's wording as protection.

How the restatement keeps to the source:
* headers: graphql-cop's `HEADERS` (`User-Agent: graphql-cop/<version>`) and, as with `-d`,
  `X-GraphQL-Cop-Test: <title>` (some modules of the version set it even without `-d`);
  requests' defaults (`Accept: */*`) are httpx's too. Neither header is one of the CSRF
  preflight headers the gate accepts (app/http/gate.py).
* verdicts: a module's `try: ... except: pass` is `_holds` (any exception: no finding), and
  `if response and ...` is `_truthy` (a requests Response is falsy for a status >= 400).
* the target: `-t http://127.0.0.1:PORT/graphql`, one path, so no path discovery.

Where a check here is the same as one of tests/test_security_checks.py (alias overloading of
`__typename`, directive overloading, the introspection-based circular query, GraphiQL on
/graphql), that one was removed and the test here also asserts how the request is refused.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.live import live_server

VERSION = "1.14"
TITLE = {
    "is_graphql": "Looking for GraphQL Interface",
    "field_suggestions": "Field Suggestions",
    "introspection": "Introspection",
    "detect_graphiql": "GraphQL IDE",
    "get_method_support": "GET Method Query Support",
    "alias_overloading": "Alias Overloading",
    "batch_query": "Array-based Query Batching",
    "field_duplication": "Field Duplication",
    "trace_mode": "Trace Mode",
    "directive_overloading": "Directive Overloading",
    "circular_query_introspection": "Introspection-based Circular Query",
    "get_based_mutation": "Mutation is allowed over GET (possible CSRF)",
    "post_based_csrf": "POST based url-encoded query (possible CSRF)",
    "unhandled_error_detection": "Unhandled Errors Detection",
}
TOO_COMPLEX = "QUERY_TOO_COMPLEX"


class Cop:
    """graphql-cop's `lib/utils.py` against one URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=60, follow_redirects=True)

    def headers(self, check: str, **extra: str) -> dict[str, str]:
        return {
            "User-Agent": f"graphql-cop/{VERSION}",
            "X-GraphQL-Cop-Test": TITLE[check],
            **extra,
        }

    def graph_query(self, check: str, payload: str, *, batch: bool = False) -> httpx.Response:
        data: Any = (
            [{"query": payload} for _ in range(10)]
            if batch
            else {"query": payload, "operationName": "cop"}
        )
        return self.client.post(self.url, headers=self.headers(check), json=data)

    def request(
        self,
        check: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        verb: str = "GET",
        **extra: str,
    ) -> httpx.Response:
        return self.client.request(
            verb, self.url, params=params, data=data, headers=self.headers(check, **extra)
        )


def _holds(verdict: Callable[[], Any]) -> bool:
    """`try: if <verdict>: result = True` / `except: pass`."""
    try:
        return bool(verdict())
    except Exception:
        return False


def _truthy(response: httpx.Response) -> bool:
    """`if response and ...`: a requests Response is truthy when `ok` (status below 400)."""
    return response.status_code < 400


def _get_error(body: Any) -> Any:
    """lib/utils.py `get_error`: the first error's message, or None."""
    try:
        return body["errors"][0]["message"]
    except Exception:
        return None


def shown(response: httpx.Response) -> str:
    return (
        f"HTTP {response.status_code} {response.headers.get('content-type')}: {response.text[:400]}"
    )


def refused_as_too_complex(response: httpx.Response, limit: str) -> None:
    """Refused before validation: one QUERY_TOO_COMPLEX error naming `limit`, nothing run."""
    assert response.status_code < 500, shown(response)
    body = response.json()
    assert body.get("data") is None, shown(response)
    assert [e["extensions"]["code"] for e in body["errors"]] == [TOO_COMPLEX], shown(response)
    assert body["errors"][0]["extensions"]["limit"] == limit, shown(response)


@pytest.fixture(scope="module")
def cop(postgres_url: str) -> Iterator[Cop]:
    env = {
        "DATABASE_URL": postgres_url,
        "PROPINTEL_PROFILE": "prod",
        "JWT_SECRET": secrets.token_hex(24),
        "ADMIN_API_KEY": secrets.token_hex(12),
        "PROPINTEL_CACHE_WARM": "0",
        "PROPINTEL_INITIAL_LOAD": "none",
    }
    with live_server(env) as base:
        client = Cop(f"{base}/graphql")
        try:
            yield client
        finally:
            client.client.close()


def test_is_graphql(cop: Cop) -> None:
    """The scan's precondition (without `-f` graphql-cop skips a target that fails it): the
    checks below are the ones a real run makes, not a skipped scan."""
    response = cop.graph_query("is_graphql", "\n    query cop {\n      __typename\n    }\n  ")
    body = response.json()
    assert body.get("data") is not None, shown(response)
    assert body["data"]["__typename"] in ("Query", "QueryRoot", "query_root", "Root")


def test_field_suggestions(cop: Cop) -> None:
    response = cop.graph_query("field_suggestions", "query cop { __schema { directive } }")
    assert not _holds(lambda: "Did you mean" in _get_error(response.json())), shown(response)


def test_introspection(cop: Cop) -> None:
    response = cop.graph_query(
        "introspection", "query cop { __schema { types { name fields { name } } } }"
    )
    assert not _holds(lambda: response.json()["data"]["__schema"]["types"]), shown(response)


def test_detect_graphiql(cop: Cop) -> None:
    heuristics = ("graphiql.min.css", "GraphQL Playground", "GraphiQL", "graphql-playground")
    response = cop.request("detect_graphiql", Accept="text/html")
    assert not _holds(
        lambda: _truthy(response) and any(word in response.text for word in heuristics)
    ), shown(response)
    # And no IDE page of any kind, whatever the status.
    assert "graphiql" not in response.text.lower(), shown(response)
    assert "<html" not in response.text.lower(), shown(response)


def test_get_method_support(cop: Cop) -> None:
    response = cop.request("get_method_support", params={"query": "query cop {__typename}"})
    assert not _holds(lambda: _truthy(response) and response.json()["data"]["__typename"]), shown(
        response
    )
    # The refusal names the header a legitimate GET client adds (tests/test_security_checks.py
    # shows such a GET answered).
    assert response.status_code == 400, shown(response)
    assert "X-Propintel-CSRF" in response.json()["errors"][0]["message"], shown(response)


def test_alias_overloading(cop: Cop) -> None:
    aliases = "".join(f"alias{i}:__typename \n" for i in range(101))
    response = cop.graph_query("alias_overloading", "query cop { " + aliases + " }")
    assert not _holds(lambda: response.json()["data"]["alias100"]), shown(response)
    refused_as_too_complex(response, "max_aliases")


def test_batch_query(cop: Cop) -> None:
    response = cop.graph_query("batch_query", "query cop { __typename }", batch=True)
    assert not _holds(lambda: len(response.json()) >= 10), shown(response)


def test_field_duplication(cop: Cop) -> None:
    response = cop.graph_query("field_duplication", "query cop { " + "__typename \n" * 500 + "} ")
    assert not _holds(lambda: response.json()["data"]["__typename"]), shown(response)


def _reports(response: httpx.Response, key: str) -> bool:
    """info_trace_mode.py / info_unhandled_error.py: the first error's `extensions[key]`, else
    (only when that lookup did not fail) the key's repr in the lowered body."""
    body = response.json()
    if body["errors"][0]["extensions"][key]:
        return True
    return f"'extensions': {{'{key}':" in str(body).lower()


def test_trace_mode(cop: Cop) -> None:
    response = cop.graph_query("trace_mode", "query cop { __typename }")
    assert not _holds(lambda: _reports(response, "tracing")), shown(response)


def test_directive_overloading(cop: Cop) -> None:
    response = cop.graph_query(
        "directive_overloading", "query cop { __typename @aa@aa@aa@aa@aa@aa@aa@aa@aa@aa }"
    )
    assert not _holds(lambda: len(response.json()["errors"]) == 10), shown(response)
    refused_as_too_complex(response, "max_directives")


# The later revision's ladder: a limit's wording in the body means protected, a 5xx or a
# dropped connection under load, or a step 10x slower than the baseline, means vulnerable.
DIRECTIVE_LADDER = (0, 10, 100, 500, 1000)
SLOW_FACTOR = 10
LIMIT_SIGNAL = re.compile(
    r"too many directives|directive.*limit|exceeds maximum|"
    r"query complexity|depth limit|maxDirectives",
    re.IGNORECASE,
)


def test_directive_overloading_ladder(cop: Cop) -> None:
    result = False
    protected_at = None
    baseline = None
    for n in DIRECTIVE_LADDER:
        query = "query cop { __typename " + "@skip(if:true)" * n + " }"
        try:
            response = cop.graph_query("directive_overloading", query)
        except httpx.TransportError:
            result = n > 0
            break
        elapsed = response.elapsed.total_seconds()
        body = response.text or ""
        if n > 0 and LIMIT_SIGNAL.search(body):
            protected_at = n
            break
        if n > 0 and 500 <= response.status_code < 600:
            result = True
            break
        if n == 0:
            baseline = elapsed
            continue
        if baseline and elapsed > baseline * SLOW_FACTOR:
            result = True
            break
    assert not result
    assert protected_at == 10, "refused at the first step, by the directive limit"


def test_circular_query_introspection(cop: Cop) -> None:
    query = (
        "query cop { __schema { types { fields { type { fields { type { fields { type "
        "{ fields { type { name } } } } } } } } } } }"
    )
    response = cop.graph_query("circular_query_introspection", query)
    assert not _holds(lambda: len(response.json()["data"]["__schema"]["types"]) > 25), shown(
        response
    )
    assert response.status_code < 500, shown(response)
    body = response.json()
    assert body.get("data") is None, shown(response)
    assert body["errors"], shown(response)


def test_get_based_mutation(cop: Cop) -> None:
    response = cop.request("get_based_mutation", params={"query": "mutation cop {__typename}"})
    assert not _holds(lambda: _truthy(response) and response.json()["data"]["__typename"]), shown(
        response
    )


def test_post_based_csrf(cop: Cop) -> None:
    response = cop.request("post_based_csrf", data={"query": "query cop {__typename}"}, verb="POST")
    assert not _holds(lambda: _truthy(response) and response.json()["data"]["__typename"]), shown(
        response
    )


def test_unhandled_error_detection(cop: Cop) -> None:
    response = cop.graph_query("unhandled_error_detection", "qwerty cop { abc }")
    assert not _holds(lambda: _reports(response, "exception")), shown(response)

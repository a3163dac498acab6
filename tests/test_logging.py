"""Logs of a live `propintel serve`: in prod, JSON lines on stdout (ours, the standard
library's and uvicorn's), one access line per request with its id, outcome and costs, the
request's id and trace ids on every line written while it runs, no credential, variable or
document anywhere; an inbound X-Request-ID kept only when short and safe. In dev, readable
lines. The prod server also exports its traces to a local OTLP receiver: the one real OTLP
export of the suite (tests/test_tracing.py checks spans in process)."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import httpx
import pytest

from app.auth.principal import Role
from app.auth.tokens import AccessTokens
from tests.support.live import free_port, live_server_process
from tests.support.otlp import OtlpReceiver, otlp_receiver

ADMIN_KEY = secrets.token_hex(12)
"""The bootstrap key (ADMIN_API_KEY): a credential, answered as anonymous."""
JWT_SECRET = secrets.token_hex(24)
ADMIN_TOKEN = AccessTokens(JWT_SECRET, 900).issue(1, Role.ADMIN).token
VARIABLE_SECRET = "zzvar" + secrets.token_hex(8)
DOCUMENT_SECRET = "zzdoc" + secrets.token_hex(8)
LOGGED = (
    "query LoggedLocalities($search: String!) {"
    "  mine: localities(search: $search, first: 1) { nodes { name } }"
    f'  literal: localities(search: "{DOCUMENT_SECRET}", first: 1) {{ nodes {{ name }} }}'
    "}"
)
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Output:
    """The server's stdout (and stderr), line by line, read as it comes."""

    lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def follow(self, stream: IO[str]) -> None:
        for line in stream:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        with self.lock:
            return "\n".join(self.lines)

    def wait_for(self, matches: Callable[[str], bool], timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [line for line in self.lines if matches(line)]
            if found:
                return found[0]
            time.sleep(0.05)
        pytest.fail(f"no such line within {timeout} s in:\n{self.text()[-3000:]}")

    def json_line(self, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def test(line: str) -> bool:
            try:
                event = json.loads(line)
            except ValueError:
                return False
            return isinstance(event, dict) and matches(event)

        found: dict[str, Any] = json.loads(self.wait_for(test))
        return found


@dataclass
class Server:
    base: str
    output: Output
    receiver: OtlpReceiver | None = None


@contextlib.contextmanager
def serve(env: dict[str, str]) -> Iterator[Server]:
    with live_server_process(env, args=["--log-level", "info"]) as live:
        assert live.process.stdout is not None
        output = Output()
        reader = threading.Thread(target=output.follow, args=(live.process.stdout,), daemon=True)
        reader.start()
        yield Server(live.base, output)


@pytest.fixture(scope="module")
def prod(postgres_url: str) -> Iterator[Server]:
    """The prod profile, tracing to a local receiver, the cache on over a Redis that is
    not there (each read through logs a warning: a line written inside a request)."""
    with otlp_receiver() as receiver:
        env = {
            "DATABASE_URL": postgres_url,
            "PROPINTEL_PROFILE": "prod",
            "JWT_SECRET": JWT_SECRET,
            "ADMIN_API_KEY": ADMIN_KEY,
            "PROPINTEL_CACHE_ENABLED": "true",
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "PROPINTEL_CACHE_WARM": "0",
            "PROPINTEL_INITIAL_LOAD": "none",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: export soon after each request
        }
        with serve(env) as server:
            server.receiver = receiver
            yield server


def post(server: Server, headers: dict[str, str], query: str = LOGGED) -> httpx.Response:
    body = {"query": query, "variables": {"search": VARIABLE_SECRET}}
    return httpx.post(f"{server.base}/graphql", json=body, headers=headers, timeout=30)


def access_line(server: Server, request_id: str) -> dict[str, Any]:
    return server.output.json_line(
        lambda e: e.get("logger") == "propintel.access" and e.get("request_id") == request_id
    )


def test_each_request_has_a_json_access_line(prod: Server) -> None:
    trace_id = secrets.token_hex(16)
    headers = {
        "Authorization": f"Bearer {ADMIN_TOKEN}",
        "X-Request-ID": "edge.test:1-A",
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
    }
    response = post(prod, headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["mine"]["nodes"] == []
    assert response.headers["x-request-id"] == "edge.test:1-A"
    line = access_line(prod, "edge.test:1-A")
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/graphql", 200)
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] > 0
    assert (line["operation_name"], line["operation_type"]) == ("LoggedLocalities", "query")
    assert line["outcome"] == "ok"
    assert line["role"] == "admin"
    assert isinstance(line["sql_statements"], int)
    assert line["sql_statements"] >= 1
    assert line["executor"] in ("compiled", "standard")
    assert line["cache"] == response.headers.get("x-cache")
    assert line["trace_id"] == trace_id  # the caller's trace, continued
    assert re.fullmatch(r"[0-9a-f]{16}", line["span_id"])
    assert line["timestamp"].endswith("Z")

    refused = httpx.post(f"{prod.base}/graphql", content=b"{}", headers={"X-Request-ID": "bad-1"})
    assert refused.status_code == 415
    line = access_line(prod, "bad-1")
    assert (line["status"], line["outcome"], line["error_codes"]) == (
        415,
        "rejected",
        ["BAD_REQUEST"],
    )
    assert line["operation_type"] is None
    assert line["role"] is None


def test_an_unsafe_or_long_request_id_is_replaced(prod: Server) -> None:
    for unsafe in ("two words", "x" * 65, "semi;colon", "quote'd", ""):
        response = httpx.get(f"{prod.base}/healthz", headers={"X-Request-ID": unsafe})
        made = response.headers["x-request-id"]
        assert made != unsafe
        assert GENERATED_ID.fullmatch(made), (unsafe, made)
        assert access_line(prod, made)["path"] == "/healthz"
    text = prod.output.text()
    assert "two words" not in text
    assert "x" * 65 not in text
    assert "semi;colon" not in text
    kept = "a" * 64
    assert (
        httpx.get(f"{prod.base}/healthz", headers={"X-Request-ID": kept}).headers["x-request-id"]
        == kept
    )


def test_lines_written_inside_a_request_carry_its_ids(prod: Server) -> None:
    trace_id = secrets.token_hex(16)
    headers = {
        "X-Request-ID": "inside-1",
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
    }
    assert post(prod, headers).status_code == 200
    warning = prod.output.json_line(
        lambda e: e.get("level") == "warning" and e.get("request_id") == "inside-1"
    )
    assert warning["logger"].startswith("propintel.")  # the cache's "L2 read failed" line
    assert warning["trace_id"] == trace_id
    assert access_line(prod, "inside-1")["trace_id"] == trace_id


def test_no_credential_variable_or_document_reaches_the_output(prod: Server) -> None:
    for number, credential in enumerate((ADMIN_TOKEN, ADMIN_KEY)):
        headers = {"Authorization": f"Bearer {credential}", "X-Request-ID": f"secrets-{number}"}
        assert post(prod, headers).status_code == 200
        access_line(prod, f"secrets-{number}")
    assert prod.receiver is not None
    time.sleep(0.5)  # the last spans' export
    text = prod.output.text().lower()
    exported = repr(prod.receiver.received()).lower()
    for secret in (ADMIN_TOKEN, ADMIN_KEY, VARIABLE_SECRET, DOCUMENT_SECRET):
        assert secret.lower() not in text
        assert secret.lower() not in exported


def test_every_line_is_json_and_uvicorn_speaks_through_it(prod: Server) -> None:
    httpx.get(f"{prod.base}/healthz", headers={"X-Request-ID": "last-1"})
    access_line(prod, "last-1")
    events = [json.loads(line) for line in prod.output.text().splitlines() if line]
    assert all(isinstance(event, dict) and "event" in event for event in events)
    loggers = {event.get("logger") for event in events}
    assert {"uvicorn.error", "propintel.access"} <= loggers
    assert "uvicorn.access" not in loggers  # our access line replaces it


def test_the_traces_reach_the_otlp_receiver(prod: Server) -> None:
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{caller}-01", "X-Request-ID": "otlp-1"}
    assert post(prod, headers).status_code == 200
    assert prod.receiver is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        names = {s.name for s in prod.receiver.received() if s.trace_id == trace_id}
        if {"POST /graphql", "query LoggedLocalities"} <= names:
            break
        time.sleep(0.1)
    assert set(prod.receiver.paths) == {"/v1/traces"}
    spans = {s.name: s for s in prod.receiver.received() if s.trace_id == trace_id}
    assert {"POST /graphql", "query LoggedLocalities"} <= set(spans), sorted(spans)
    server, graphql = spans["POST /graphql"], spans["query LoggedLocalities"]
    assert server.parent_span_id == caller
    assert graphql.parent_span_id == server.span_id
    assert graphql.attributes["graphql.operation.name"] == "LoggedLocalities"
    assert server.service_name == "propintel"
    line = access_line(prod, "otlp-1")
    assert line["trace_id"] == trace_id
    assert line["span_id"] == server.span_id


def test_dev_logs_are_readable_lines(postgres_url: str) -> None:
    env = {"DATABASE_URL": postgres_url, "PROPINTEL_PROFILE": "dev"}
    env["PROPINTEL_INITIAL_LOAD"] = "none"
    with serve(env) as server:
        response = httpx.get(f"{server.base}/healthz", headers={"X-Request-ID": "dev-1"})
        assert response.headers["x-request-id"] == "dev-1"
        line = server.output.wait_for(lambda text: "request_id=dev-1" in text)
    assert "request" in line
    assert "status=200" in line
    assert "path=/healthz" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_a_traceback_is_one_json_field() -> None:
    """exc_info in prod: the `exception` field of one line, never lines of its own."""
    code = (
        "import logging, structlog\n"
        "from app.telemetry.logging import configure_logging\n"
        "configure_logging(True, 'info')\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    logging.getLogger('propintel.test').exception('stdlib failed')\n"
        "    structlog.get_logger().error('structlog failed', exc_info=True)\n"
        "logging.getLogger('propintel.test').debug('below the level')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    lines = run.stdout.splitlines()
    assert len(lines) == 2, run.stdout
    for line, event in zip(lines, ("stdlib failed", "structlog failed"), strict=True):
        parsed = json.loads(line)
        assert parsed["event"] == event
        assert parsed["level"] == "error"
        assert "Traceback" in parsed["exception"]
        assert "ZeroDivisionError" in parsed["exception"]

"""`propintel serve` for bench/observability_instructions.py, with parts of observability
taken out, so that the same tree and the same request tell what they cost and nothing else
(not the other changes since a base commit).

    PROPINTEL_BENCH_WITHOUT=metrics,edge python -P -m bench.observability_off serve ...

`PROPINTEL_BENCH_WITHOUT` (comma-separated, may be empty): `metrics` makes every
prometheus-client update and every batched tally (app/telemetry/labels.py) a no-op; `edge`
leaves the HTTP edge (app/http/observe.py) only its security headers (not observability):
no record, request id, request metrics or access line. Tracing is off, as bench/run runs.
`PROPINTEL_BENCH_FLUSH_S`: the tallies' flush interval instead of 0.25 s: under valgrind a
request takes ~50x as long, so a timer per wall-clock interval fires ~50x as often per
request as at full speed; the bench defers it and counts a flush's cost apart.
Applied as soon as serve has set up the metrics directory (prometheus-client may not be
imported before that), before the app is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from app.telemetry import multiprocess


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


def _take_out() -> None:
    import prometheus_client.metrics as families

    from app.http import observe
    from app.http.headers import CREDENTIAL_HEADERS, NO_STORE
    from app.telemetry import labels

    parts = set(filter(None, os.environ.get("PROPINTEL_BENCH_WITHOUT", "").split(",")))
    if unknown := parts - {"metrics", "edge"}:
        raise SystemExit(f"PROPINTEL_BENCH_WITHOUT: unknown parts {sorted(unknown)}")
    if flush_s := os.environ.get("PROPINTEL_BENCH_FLUSH_S"):
        labels.FLUSH_WITHIN_S = float(flush_s)
    for owner, methods in (
        (families.Counter, ("inc",)),
        (families.Gauge, ("inc", "dec", "set")),
        (families.Histogram, ("observe",)),
        (families.Summary, ("observe",)),
        (labels.BatchedCounter, ("inc", "add")),
        (labels.BatchedHistogram, ("observe",)),
        (labels.BatchedValue, ("inc", "dec")),
        (labels.BatchedObservations, ("observe",)),
        (labels.Tally, ("due", "flush")),
    ):
        for method in methods:
            if "metrics" in parts:
                setattr(owner, method, _nothing)

    async def headers_only(
        self: observe.Observe, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Observe.__call__ without the record, the id, the metrics and the access line."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentialed = False
        for name, _ in scope["headers"]:
            if name in CREDENTIAL_HEADERS:
                credentialed = True
        security, security_names = self.security, self.security_names

        def send_with_headers(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                extra = security
                for name, _ in headers:
                    if name in security_names:
                        present = {name for name, _ in headers}
                        extra = tuple(header for header in security if header[0] not in present)
                        break
                message["headers"] = [*headers, *extra]
                if credentialed and all(name != b"cache-control" for name, _ in headers):
                    message["headers"].append(NO_STORE)
            return send(message)

        await self.app(scope, receive, send_with_headers)

    if "edge" in parts:
        observe.Observe.__call__ = headers_only  # type: ignore[method-assign]


_prepare = multiprocess.prepare


def _prepare_then_take_out(default: Path) -> Path:
    path = _prepare(default)
    _take_out()
    return path


multiprocess.prepare = _prepare_then_take_out

if __name__ == "__main__":
    from app.cli import main

    sys.argv[0] = "propintel"
    raise SystemExit(main())

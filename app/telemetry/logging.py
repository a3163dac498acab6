"""Structured logs (structlog): JSON lines in prod, readable lines in dev.

Two ways in, one renderer out. Our own events take structlog's fast path: a filtering bound
logger that renders with orjson and writes bytes, no `logging.LogRecord` in between.
Everything logged through the standard library — our modules' `logging.getLogger(...)`,
uvicorn, asyncpg, SQLAlchemy — reaches the same processors and renderer through
`structlog.stdlib.ProcessorFormatter` on the root logger. uvicorn's own access log is
silenced: our access line replaces it.

The access line (`access_line`, once per request: app/http/observe.py) is the one event on
the hot path. In JSON it skips even structlog's processor chain (a context copy, five calls,
a datetime): the same fields rendered by orjson, a third of the time; and it is flushed
within FLUSH_WITHIN_S rather than at once. In console mode it goes through structlog like
any other event.

Every line written while a request runs carries its `request_id` (and `trace_id`/`span_id`
when a span is current), read from the request's record: nothing binds them per request.
A traceback is a field of the line (`exception`), never lines of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import io
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC
from datetime import datetime as _datetime
from typing import Any, BinaryIO, TextIO

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from app.telemetry import tracing
from app.telemetry.request import FIELDS, RequestRecord, current_request

ACCESS_LOGGER = "propintel.access"
_time = time.time
_SECOND = "%Y-%m-%dT%H:%M:%S"
_UTC = UTC
_LEVELS = {"trace": 5, "debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def add_request_context(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """The request's id, and the current span's trace and span ids while tracing is on."""
    request = current_request.get()
    if request is not None:
        event.setdefault("request_id", request.request_id.decode())
    if tracing.active():  # off: no span lookup at all
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event.setdefault("trace_id", format(context.trace_id, "032x"))
            event.setdefault("span_id", format(context.span_id, "016x"))
    return event


AccessWriter = Callable[[RequestRecord, int, int], None]
"""(record, status, duration in microseconds)."""


def _through_structlog(record: RequestRecord, status: int, micros: int) -> None:
    fields = {name: getattr(record, name) for name in FIELDS}
    fields["request_id"] = record.request_id.decode()
    fields["error_codes"] = list(record.error_codes)
    structlog.get_logger().info(
        "request", logger=ACCESS_LOGGER, status=status, duration_ms=micros / 1000, **fields
    )


access_line: AccessWriter | None = _through_structlog
"""Writes one request's access line: its status and duration, and every field of its
record (app/telemetry/request.py: what the edge, the gate, the view and the executor noted).
The edge (app/http/observe.py) reads it per request; None while the level is above info.
Unconfigured (tests, benches that build the app themselves): structlog's defaults."""


FLUSH_WITHIN_S = 0.05
"""Access lines reach the stream within this: one write for all the lines of a busy moment,
not a system call per request (any other log line flushes them at once, in order)."""

# The access line in JSON: the fields of `_json_event` in the same order, filled by bytes
# formatting. Per request this is ~40% of the instructions of a dict rendered by orjson (a
# dict of 18 keys built and walked, a datetime made and formatted, a float rounded).
_ACCESS_LINE = (
    b'{"event":"request","logger":"propintel.access","level":"info",'
    b'"timestamp":"%s.%06dZ","request_id":"%s","method":%s,"path":%s,"status":%d,'
    b'"duration_ms":%d.%03d,"operation_name":%s,"operation_type":%s,"outcome":%s,'
    b'"cache":%s,"executor":%s,"error_codes":%s,"cost":%s,"sql_statements":%d,"role":%s}\n'
)
_KNOWN_VALUES = (
    *("GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "WS"),
    *("query", "mutation", "subscription"),
    *("ok", "error", "client_error", "rejected"),
    *("hit", "miss", "stale"),
    *("compiled", "fallback", "standard"),
    *("anonymous", "user", "admin"),
)
_QUOTED: dict[str | None, bytes] = {None: b"null"} | {
    value: orjson.dumps(value) for value in _KNOWN_VALUES
}
"""JSON of the bounded values, made once; anything else (a path, an operation name, a method
a client made up) is rendered by orjson, which escapes it."""


def _quoted(value: str | None) -> bytes:
    return _QUOTED.get(value) or orjson.dumps(value)


def _json_access(out: BinaryIO) -> AccessWriter:
    write, flush = out.write, out.flush
    dumps, quoted, known, line = orjson.dumps, _quoted, _QUOTED.get, _ACCESS_LINE
    flushing_on: asyncio.AbstractEventLoop | None = None
    # The timestamp's text to the second, made once per second (TimeStamper(fmt="iso",
    # utc=True)'s form, with microseconds always written).
    second, second_text = 0, b""

    def flush_now() -> None:
        nonlocal flushing_on
        flushing_on = None
        flush()

    def access(record: RequestRecord, status: int, micros: int) -> None:
        nonlocal flushing_on, second, second_text
        now = _time()
        if int(now) != second:
            second = int(now)
            second_text = _datetime.fromtimestamp(second, _UTC).strftime(_SECOND).encode()
        codes, cost = record.error_codes, record.cost
        text = line % (
            second_text,
            int((now - second) * 1_000_000),
            record.request_id,  # ASCII, no quote or backslash: app/http/observe.py
            known(record.method) or dumps(record.method),
            dumps(record.path),
            status,
            *divmod(micros, 1000),
            quoted(record.operation_name),
            known(record.operation_type) or dumps(record.operation_type),
            known(record.outcome) or dumps(record.outcome),
            known(record.cache) or dumps(record.cache),
            known(record.executor) or dumps(record.executor),
            dumps(codes) if codes else b"[]",
            b"null" if cost is None else b"%d" % cost,
            record.sql_statements,
            known(record.role) or dumps(record.role),
        )
        if tracing.active():  # the span's ids: a rare path, through a dict
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                event = orjson.loads(text)
                event["trace_id"] = format(context.trace_id, "032x")
                event["span_id"] = format(context.span_id, "016x")
                text = orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)
        write(text)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop to flush later from
            flush()
            return
        if flushing_on is not loop:
            flushing_on = loop
            loop.call_later(FLUSH_WITHIN_S, flush_now)

    return access


def _json_bytes(event: EventDict, **_: Any) -> bytes:
    # default=str: an odd value (a Path, an exception) still renders instead of failing
    return orjson.dumps(event, default=str)


def _json_text(event: EventDict, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def level_number(level: str) -> int:
    try:
        return _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r} (one of {', '.join(_LEVELS)})") from None


_BUFFERED: dict[int, TextIO] = {}
"""Buffered stand-ins of unbuffered streams, by the raw stream's id: made once, kept for the
process's life (a discarded wrapper would close the raw stream under it)."""


def buffered(out: TextIO) -> TextIO:
    """`out`, or a stand-in writing to the same file through a buffer when its binary layer
    is raw (PYTHONUNBUFFERED=1 or `python -u`, as container images often set): every write
    would be a system call, ~10% of a cached answer for the access line alone. Every event
    but the access line flushes as it is written (structlog's BytesLogger, logging's
    StreamHandler), so lines stay in order and prompt; access lines wait at most
    FLUSH_WITHIN_S, and an exit flushes them."""
    raw = getattr(out, "buffer", None)
    if raw is None or isinstance(raw, io.BufferedIOBase):
        return out
    known = _BUFFERED.get(id(raw))
    if known is None:
        writer = io.BufferedWriter(raw, buffer_size=1 << 16)
        known = _BUFFERED[id(raw)] = io.TextIOWrapper(
            writer, encoding=getattr(out, "encoding", None) or "utf-8", write_through=True
        )
        atexit.register(writer.flush)
    return known


def configure_logging(json: bool, level: str = "info", *, stream: TextIO | None = None) -> None:
    """Sets up structlog and the standard library's root logger; safe to call again (the
    `serve` process configures before uvicorn starts, each worker in the app factory)."""
    global access_line
    out = buffered(stream or sys.stdout)
    threshold = level_number(level)
    shared: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_request_context,
    ]
    binary: BinaryIO | None = getattr(out, "buffer", None)  # None: a text-only stream
    if json:
        # One line per event: a traceback becomes the `exception` string field.
        tail: list[Processor] = [structlog.processors.format_exc_info]
        foreign: Processor = structlog.processors.JSONRenderer(serializer=_json_text)
        native: Processor = foreign
        factory: Any = structlog.WriteLoggerFactory(file=out)
        if binary is not None:
            native = structlog.processors.JSONRenderer(serializer=_json_bytes)
            factory = structlog.BytesLoggerFactory(file=binary)
    else:
        tail = []
        # Plain tracebacks: rich's show the frames' locals, which may hold a credential.
        native = foreign = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        factory = structlog.WriteLoggerFactory(file=out)
    structlog.configure(
        processors=[*shared, *tail, native],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, foreign],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(threshold)
    logging.captureWarnings(True)  # warnings too: rendered lines, not raw stderr text
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn's loggers: through the root's handler
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []
        uvicorn_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    access.disabled = True
    if threshold > logging.INFO:
        access_line = None
    elif json and binary is not None:
        access_line = _json_access(binary)
    else:
        access_line = _through_structlog

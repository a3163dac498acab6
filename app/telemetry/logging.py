"""Structured logs (structlog): JSON lines in prod, readable lines in dev.

Two ways in, one renderer out. Our own events take structlog's fast path: a filtering bound
logger that renders with orjson and writes bytes, no `logging.LogRecord` in between.
Everything logged through the standard library — our modules' `logging.getLogger(...)`,
uvicorn, asyncpg, SQLAlchemy — reaches the same processors and renderer through
`structlog.stdlib.ProcessorFormatter` on the root logger. uvicorn's own access log is
silenced: our access line replaces it.

The access line (`write_access`, once per request: app/http/observe.py) is the one event on
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
import dataclasses
import io
import logging
import sys
from collections.abc import Callable
from datetime import UTC
from datetime import datetime as _datetime
from typing import Any, BinaryIO, TextIO

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from app.telemetry import tracing
from app.telemetry.request import RequestRecord, current_request

ACCESS_LOGGER = "propintel.access"
_now = _datetime.now
_UTC = UTC
_LEVELS = {"trace": 5, "debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def add_request_context(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """The request's id, and the current span's trace and span ids while tracing is on."""
    request = current_request.get()
    if request is not None:
        event.setdefault("request_id", request.request_id)
    if tracing.active():  # off: no span lookup at all
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event.setdefault("trace_id", format(context.trace_id, "032x"))
            event.setdefault("span_id", format(context.span_id, "016x"))
    return event


AccessWriter = Callable[[RequestRecord, int, float], None]


def _through_structlog(record: RequestRecord, status: int, duration_ms: float) -> None:
    fields = {name: getattr(record, name) for name in _RECORD_FIELDS}
    structlog.get_logger().info(
        "request", logger=ACCESS_LOGGER, status=status, duration_ms=round(duration_ms, 3), **fields
    )


_RECORD_FIELDS = tuple(field.name for field in dataclasses.fields(RequestRecord))
_write_access: AccessWriter = _through_structlog
"""Unconfigured (tests, benches that build the app themselves): structlog's defaults."""


def write_access(record: RequestRecord, status: int, duration_ms: float) -> None:
    """One request's access line: its status and duration, and every field of its record
    (app/telemetry/request.py: what the edge, the gate, the view and the executor noted)."""
    _write_access(record, status, duration_ms)


FLUSH_WITHIN_S = 0.05
"""Access lines reach the stream within this: one write for all the lines of a busy moment,
not a system call per request (any other log line flushes them at once, in order)."""


def _json_access(out: BinaryIO) -> AccessWriter:
    write, flush = out.write, out.flush
    # A datetime orjson writes itself: what TimeStamper(fmt="iso", utc=True) writes, at
    # half the cost of formatting it in Python.
    options = orjson.OPT_APPEND_NEWLINE | orjson.OPT_UTC_Z
    flushing_on: asyncio.AbstractEventLoop | None = None

    def flush_now() -> None:
        nonlocal flushing_on
        flushing_on = None
        flush()

    def access(record: RequestRecord, status: int, duration_ms: float) -> None:
        nonlocal flushing_on
        # A dict literal: half the cost of orjson walking the dataclass's fields.
        line = {
            "event": "request",
            "logger": ACCESS_LOGGER,
            "level": "info",
            "timestamp": _now(_UTC),
            "request_id": record.request_id,
            "method": record.method,
            "path": record.path,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "operation_name": record.operation_name,
            "operation_type": record.operation_type,
            "outcome": record.outcome,
            "cache": record.cache,
            "executor": record.executor,
            "sql_statements": record.sql_statements,
            "role": record.role,
            "cost": record.cost,
            "error_codes": record.error_codes,
        }
        if tracing.active():
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                line["trace_id"] = format(context.trace_id, "032x")
                line["span_id"] = format(context.span_id, "016x")
        write(orjson.dumps(line, option=options))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop to flush later from
            flush()
            return
        if flushing_on is not loop:
            flushing_on = loop
            loop.call_later(FLUSH_WITHIN_S, flush_now)

    return access


def _no_access(record: RequestRecord, status: int, duration_ms: float) -> None:
    pass


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
    global _write_access
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
        _write_access = _no_access
    elif json and binary is not None:
        _write_access = _json_access(binary)
    else:
        _write_access = _through_structlog

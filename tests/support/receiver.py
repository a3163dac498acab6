"""A real HTTP receiver for webhook tests: an asyncio server on 127.0.0.1 (a free port),
HTTP/1.1 with keep-alive, whose answers are scripted per path.

    async with Receiver() as receiver:
        receiver.script("/hook", Reply(500), Reply(200))     # then 200s
        receiver.secrets["/hook"] = [secret]                 # verify with standardwebhooks
        ... deliver to receiver.url("/hook") ...
        await receiver.wait_for(2, "/hook")
        assert [r.status for r in receiver.on("/hook")] == [500, 200]

Each request is checked as an independent receiver would, with the `standardwebhooks`
package (`Webhook(secret).verify(body, headers)` for each secret given for its path): what
it verified (the parsed body) or why not is kept with the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Sleep this long before answering (past the sender's timeout: no answer)."""
    body: bytes = b"ok"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes
    at: float
    """time.time() when it arrived."""
    status: int
    """What it was answered (or was going to be, for a sender that gave up waiting)."""
    verified: Any = None
    """The body as `standardwebhooks` parsed it after verifying (None: not verified)."""
    verify_error: str | None = None

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


_REASONS = {
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    410: "Gone",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.secrets: dict[str, list[str]] = {}
        self._script: defaultdict[str, deque[Reply]] = defaultdict(deque)
        self.default = Reply()
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Condition()
        self._connections: set[asyncio.Task[Any]] = set()
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # -- scripting and reading -----------------------------------------------------------------

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to `path` with these, in order (then `default`)."""
        self._script[path].extend(replies)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, count: int, path: str | None = None, timeout: float = 10) -> None:  # noqa: ASYNC109
        def enough() -> bool:
            got = self.received if path is None else self.on(path)
            return len(got) >= count

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(enough), timeout)

    # -- HTTP ---------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *lines = head.decode("latin-1").split("\r\n")
                _method, target, _version = request_line.split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = min(int(headers.get("content-length", "0")), MAX_BODY)
                body = await reader.readexactly(length) if length else b""
                path = target.split("?", 1)[0]
                queued = self._script.get(path)
                reply = queued.popleft() if queued else self.default
                await self._record(path, headers, body, reply.status)
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                writer.write(self._response(reply))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    def _response(reply: Reply) -> bytes:
        reason = _REASONS.get(reply.status, "Status")
        lines = [f"HTTP/1.1 {reply.status} {reason}", f"content-length: {len(reply.body)}"]
        lines += [f"{name}: {value}" for name, value in reply.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body

    async def _record(self, path: str, headers: dict[str, str], body: bytes, status: int) -> None:
        received = Received(path, headers, body, time.time(), status)
        secrets = self.secrets.get(path, [])
        errors: list[str] = []
        for secret in secrets:
            try:
                received.verified = Webhook(secret).verify(body, headers)
                break
            except WebhookVerificationError as error:
                errors.append(str(error))
        if received.verified is None:
            received.verify_error = "; ".join(errors) or "no secret for this path"
        async with self._arrived:
            self.received.append(received)
            self._arrived.notify_all()

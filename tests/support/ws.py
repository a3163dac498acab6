"""A small graphql-transport-ws client (the protocol of graphql-ws, the JavaScript library)
over the `websockets` package, for tests and the subscription bench.

    async with GraphQLWS.connect(base_url, token) as ws:
        await ws.subscribe("1", "subscription { alerts { id kind } }")
        message = await ws.receive(timeout=1)   # {"id": "1", "type": "next", "payload": ...}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

PROTOCOL = "graphql-transport-ws"


class Closed(Exception):
    """The server closed the socket: its close code and reason."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


def ws_url(base_url: str) -> str:
    """`http://host:port` -> `ws://host:port/graphql`."""
    return base_url.replace("https://", "wss://").replace("http://", "ws://") + "/graphql"


class GraphQLWS:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.ack: dict[str, Any] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        base_url: str,
        token: str | None = None,
        *,
        payload: dict[str, Any] | None = None,
        protocol: str = PROTOCOL,
        init: bool = True,
        open_timeout: float = 10,
    ) -> AsyncIterator[GraphQLWS]:
        """Opens the socket and (`init`) sends connection_init with `payload`, or with
        `{"Authorization": "Bearer <token>"}` when a token is given, then waits for the ack
        (raising Closed if the server closes instead)."""
        async with connect(
            ws_url(base_url),
            subprotocols=[protocol],  # type: ignore[list-item]
            open_timeout=open_timeout,
            max_queue=None,
        ) as connection:
            client = cls(connection)
            if init:
                if payload is None:
                    payload = {"Authorization": f"Bearer {token}"} if token else {}
                await client.init(payload)
            yield client

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def init(self, payload: dict[str, Any], within: float = 10) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": payload})
        message = await self.receive(within)
        assert message["type"] == "connection_ack", message
        self.ack = message
        return message

    async def subscribe(
        self, operation_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        await self.send({"id": operation_id, "type": "subscribe", "payload": payload})

    async def complete(self, operation_id: str) -> None:
        await self.send({"id": operation_id, "type": "complete"})

    async def receive(self, within: float = 5) -> dict[str, Any]:
        """The next message, answering pings; Closed when the server closed the socket,
        TimeoutError when nothing came within `within` seconds."""
        async with asyncio.timeout(within):
            while True:
                try:
                    raw = await self.connection.recv()
                except ConnectionClosed as closed:
                    received = closed.rcvd
                    raise Closed(
                        received.code if received else None, received.reason if received else ""
                    ) from None
                message: dict[str, Any] = json.loads(raw)
                if message.get("type") == "ping":
                    await self.send({"type": "pong"})
                    continue
                return message

    async def nothing_within(self, seconds: float) -> None:
        """Asserts that no message arrives within `seconds`."""
        try:
            message = await self.receive(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected no message, got {message}")

    async def closed(self, within: float = 5) -> Closed:
        """Waits for the server to close the socket; its code and reason."""
        try:
            message = await self.receive(within)
        except Closed as closed:
            return closed
        raise AssertionError(f"expected the socket to close, got {message}")


@contextlib.asynccontextmanager
async def uvicorn_serving(app: Any, *, startup_s: float = 60) -> AsyncIterator[str]:
    """Serves `app` (its lifespan included) with a real uvicorn server on a free port, in
    this event loop (httpx's ASGI transport has no websockets); yields the base URL. The test
    keeps `app.state` at hand (the broker, the database)."""
    import uvicorn

    from tests.support.live import free_port

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(startup_s):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)

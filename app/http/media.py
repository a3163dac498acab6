"""`application/graphql-response+json` (GraphQL over HTTP), which Strawberry does not speak.

For a client that prefers it, the answer is relabelled: that media type, and a request that
failed before execution (a parse or validation error: errors without a path, data null) gets
HTTP 400 and no `data` entry, as the spec asks. Strawberry's plain-text refusals become JSON
errors. Plain `application/json` clients get Strawberry's answers untouched.
"""

from __future__ import annotations

import orjson
from starlette.types import Message, Send

GRAPHQL_RESPONSE = "application/graphql-response+json"
_JSON = "application/json"


def preferred_media_type(accept: str) -> str | None:
    """GRAPHQL_RESPONSE when the client ranks it above plain JSON (or omits plain JSON)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media_type, *params = (item.strip() for item in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media_type in (GRAPHQL_RESPONSE, _JSON) and quality > 0:
            ranked.append((-quality, position, media_type))
    if not ranked:
        return None
    best = min(ranked)[2]
    return GRAPHQL_RESPONSE if best == GRAPHQL_RESPONSE else None


def as_graphql_response(send: Send) -> Send:
    start: Message | None = None
    chunks: list[bytes] = []

    async def relabel(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        status, body = _rewrite(start["status"], _content_type(start), b"".join(chunks))
        headers = [
            (name, value)
            for name, value in start.get("headers", ())
            if name.lower() not in (b"content-type", b"content-length")
        ]
        headers += [
            (b"content-type", GRAPHQL_RESPONSE.encode() + b"; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({**start, "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return relabel


def _content_type(start: Message) -> bytes:
    for name, value in start.get("headers", ()):
        if name.lower() == b"content-type":
            return bytes(value)
    return b""


def _rewrite(status: int, content_type: bytes, body: bytes) -> tuple[int, bytes]:
    if not content_type.startswith((b"application/json", GRAPHQL_RESPONSE.encode())):
        if status < 400:
            return status, body
        message = body.decode("utf-8", "replace").strip() or "Bad request."
        return status, orjson.dumps({"errors": [{"message": message}]})
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, body
    if (
        status == 200
        and isinstance(payload, dict)
        and payload.get("data") is None
        and payload.get("errors")
        and not any("path" in error for error in payload["errors"])
    ):
        payload.pop("data", None)  # a request error: nothing was executed
        return 400, orjson.dumps(payload)
    return status, body

"""Security headers on every response (pure ASGI: no per-request objects on the hot path)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
# An API answer needs nothing: no CSP but the framing rule outside prod.
_DEV_CSP = (b"content-security-policy", b"frame-ancestors 'none'")
# GraphiQL's page (outside prod, app/http/graphiql.py) sets its own, which this middleware
# leaves alone: scripts, styles and requests of our origin only, no inline script. `data:` for
# fonts and images only: GraphiQL's stylesheet embeds its fonts and lint icons. The page's
# nonce (new for every response) admits the <style> elements GraphiQL's dialogs insert
# (react-remove-scroll-bar tags them with `__webpack_nonce__`, which the page's script sets).


def graphiql_csp(style_nonce: str) -> str:
    return (
        "default-src 'none'; script-src 'self'; "
        f"style-src 'self' 'nonce-{style_nonce}'; font-src 'self' data:; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


_PROD = (
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, production: bool) -> None:
        self.app = app
        self.headers = _COMMON + (_PROD if production else (_DEV_CSP,))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentialed = any(
            name in (b"authorization", b"x-api-key", b"cookie") for name, _ in scope["headers"]
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(n, v) for n, v in self.headers if n not in present]
                if credentialed and b"cache-control" not in present:
                    # An answer for one user must not be kept by shared caches.
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

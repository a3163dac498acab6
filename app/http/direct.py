"""The GraphQL route's requests straight to their handler, past Starlette's router.

Every POST or GET of `/graphql` would otherwise go through Starlette's exception middleware
and router: a regular-expression match per route until one fits, a method check, a child
scope; a few percent of a whole-operation cache hit. The gate (app/http/gate.py) and the
views answer every error themselves (a JSON body with a code, never an exception for
Starlette to format), so nothing of that work changes an answer. Everything else (other
paths and methods, websockets, lifespan) takes Starlette's way.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

DIRECT_METHODS = frozenset({"GET", "POST"})


class DirectRoutes:
    def __init__(self, app: ASGIApp, *, routes: dict[str, ASGIApp]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in DIRECT_METHODS:
            target = self.routes.get(scope["path"])
            if target is not None:
                await target(scope, receive, send)
                return
        await self.app(scope, receive, send)

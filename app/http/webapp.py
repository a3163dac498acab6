"""The web app (web/app, built by Vite into web/app/dist) at `/` and its client-side routes.

- `/assets/...`: the bundle's files, named by their content's hash, so browsers keep them a
  year without asking again (`immutable`); a new build has new names.
- `/` and the app's routes (`SPA_PATHS`): dist/index.html, `no-cache` (revalidated each time,
  304 while unchanged: a new build is seen at once), under `webapp_csp` in every profile.
- `/` for API clients: a request that does not ask for HTML (no `text/html` in Accept, as
  curl's and most HTTP libraries' `*/*`) gets the JSON "about" answer (app/http/front.py).
- Files of web/app/public (the icon): an hour.

While dist/ is missing (not built yet) these answer 503 with the command that builds it;
the GraphQL API works without it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from app.http.front import about_response
from app.http.headers import webapp_csp

logger = logging.getLogger("propintel.webapp")

DIST = Path(__file__).resolve().parents[2] / "web" / "app" / "dist"
ASSETS = "/assets"
SPA_PATHS = (
    "/",
    "/property/{id}",
    "/locality/{id}",
    "/signin",
    "/register",
    "/account",
)
"""The app's client-side routes (web/app/src/main.ts): each answers index.html."""
PUBLIC_FILES = ("favicon.svg",)
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
PUBLIC = "public, max-age=3600"

BUILD = "scripts/bootstrap (or: cd web/app && npm ci && npm run build)"
MISSING = f"""The web app is not built: web/app/dist is missing (or incomplete).
Run {BUILD}, then reload this page. scripts/serve builds it before starting; the GraphQL API \
itself works without it: POST /graphql.
"""
MISSING_PAGE = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>The web app is not built</title></head>
<body>
<main>
<h1>The web app is not built</h1>
<pre>{MISSING}</pre>
</main>
</body>
</html>
"""


def built(root: Path = DIST) -> bool:
    return (root / "index.html").is_file() and (root / "assets").is_dir()


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


class WebApp:
    """The routes of the web app over the build at `root`."""

    def __init__(self, root: Path = DIST, *, docs_url: str | None = None) -> None:
        self.root = root
        self.docs_url = docs_url
        # StaticFiles: content types, ETags and Last-Modified, 304s, HEAD, no path escapes.
        self.files = StaticFiles(directory=root, check_dir=False)
        self.assets = StaticFiles(directory=root / "assets", check_dir=False)

    async def index(self, request: Request) -> Response:
        if request.url.path == "/" and not wants_html(request):
            return about_response(self.docs_url)
        if not built(self.root):
            logger.warning("The web app asked for, web/app/dist is missing: run %s", BUILD)
            return HTMLResponse(
                MISSING_PAGE, status_code=503, headers={"cache-control": "no-store"}
            )
        response = await self.files.get_response("index.html", request.scope)
        response.headers["cache-control"] = REVALIDATE
        response.headers["content-security-policy"] = webapp_csp()
        return response

    async def public(self, request: Request) -> Response:
        if not built(self.root):
            return PlainTextResponse(MISSING, status_code=503)
        response = await self.files.get_response(request.url.path.lstrip("/"), request.scope)
        if response.status_code in (200, 304):
            response.headers["cache-control"] = PUBLIC
        return response

    async def serve_asset(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not built(self.root):
            await PlainTextResponse(MISSING, status_code=503)(scope, receive, send)
            return

        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                headers = list(message.get("headers", []))
                if "cache-control" not in Headers(raw=headers):
                    message["headers"] = [*headers, (b"cache-control", IMMUTABLE.encode())]
            await send(message)

        await self.assets(scope, receive, send_cached)

    def routes(self) -> list[BaseRoute]:
        return [
            Mount(ASSETS, app=self.serve_asset),
            *(Route(f"/{name}", self.public, methods=["GET", "HEAD"]) for name in PUBLIC_FILES),
            *(Route(path, self.index, methods=["GET", "HEAD"]) for path in SPA_PATHS),
        ]


def webapp_routes(root: Path = DIST, *, docs_url: str | None = None) -> list[BaseRoute]:
    """The app's routes, for app/asgi.py."""
    return WebApp(root, docs_url=docs_url).routes()

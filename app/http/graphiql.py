"""GraphiQL from our own origin, outside the prod profile: `GET /graphql` with `Accept:
text/html` answers this module's page, which loads only `/graphiql/static/...`: GraphiQL's
browser bundle and React's UMD builds (npm packages pinned by web/graphiql/package-lock.json,
installed into web/graphiql/node_modules by scripts/bootstrap with `npm ci`, not committed)
and web/graphiql/public/ (the script that mounts GraphiQL, a stylesheet, the icon).

Nothing comes from another origin, so the page works offline and under `graphiql_csp` (no
inline script; styles of our origin or with the response's nonce). While the npm packages are
missing, the page and the assets answer 503 with what to run, not a page that never loads.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Router
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from app.http.headers import graphiql_csp

logger = logging.getLogger("propintel.graphiql")

ASSETS_DIR = Path(__file__).resolve().parents[2] / "web" / "graphiql"
PREFIX = "/graphiql/static"
# URL folder under PREFIX -> folder under ASSETS_DIR (only these are served).
FOLDERS = {
    "graphiql": "node_modules/graphiql",
    "react": "node_modules/react/umd",
    "react-dom": "node_modules/react-dom/umd",
    "propintel": "public",
}
# What the page loads, in order, as URL paths under PREFIX.
STYLESHEETS = ("graphiql/graphiql.min.css", "propintel/propintel.css")
SCRIPTS = (
    "react/react.production.min.js",
    "react-dom/react-dom.production.min.js",
    "graphiql/graphiql.min.js",
    "propintel/start.js",
)

_LINKS = "".join(f'<link rel="stylesheet" href="{PREFIX}/{path}">\n' for path in STYLESHEETS)
_SCRIPTS = "".join(f'<script src="{PREFIX}/{path}"></script>\n' for path in SCRIPTS)
# `{nonce}`: the response's style nonce, for the `<style>` elements GraphiQL inserts;
# public/start.js reads it from the meta element (browsers hide it from the attribute).
PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>propintel · GraphiQL</title>
<meta property="csp-nonce" nonce="{{nonce}}">
<link rel="icon" href="{PREFIX}/propintel/favicon.svg" type="image/svg+xml">
{_LINKS}</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
{_SCRIPTS}</body>
</html>
"""

MISSING = """GraphiQL's assets are not installed: web/graphiql/node_modules is missing (or \
incomplete).
Run scripts/bootstrap (it installs them with `npm ci` in web/graphiql; it needs npm), then \
reload this page. The GraphQL API itself works without them: POST /graphql.
"""

MISSING_PAGE = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>GraphiQL is not installed</title></head>
<body>
<h1>GraphiQL is not installed</h1>
<pre>{MISSING}</pre>
</body>
</html>
"""


def installed(root: Path = ASSETS_DIR) -> bool:
    """Every file the page loads is there."""
    return all(_file(root, path).is_file() for path in (*STYLESHEETS, *SCRIPTS))


def _file(root: Path, url_path: str) -> Path:
    folder, _, name = url_path.partition("/")
    return root / FOLDERS[folder] / name


def graphiql_page(root: Path = ASSETS_DIR) -> Response:
    nonce = secrets.token_urlsafe(18)
    headers = {"content-security-policy": graphiql_csp(nonce), "cache-control": "no-store"}
    if not installed(root):
        logger.warning("GraphiQL asked for, its assets are missing: run scripts/bootstrap")
        return HTMLResponse(MISSING_PAGE, status_code=503, headers=headers)
    return HTMLResponse(PAGE.format(nonce=nonce), headers=headers)


class GraphiQLAssets:
    """`PREFIX/...`: the folders of `FOLDERS` (Starlette's StaticFiles: ETags, 304s), or 503
    while the npm packages are not installed."""

    def __init__(self, root: Path = ASSETS_DIR) -> None:
        self.root = root
        self.router = Router(
            routes=[
                Mount(f"/{name}", app=StaticFiles(directory=root / folder, check_dir=False))
                for name, folder in FOLDERS.items()
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not installed(self.root):
            await PlainTextResponse(MISSING, status_code=503)(scope, receive, send)
            return
        await self.router(scope, receive, send)


def graphiql_assets(root: Path = ASSETS_DIR) -> BaseRoute:
    """The route of the assets, for the app's routes (outside the prod profile only)."""
    return Mount(PREFIX, app=GraphiQLAssets(root))

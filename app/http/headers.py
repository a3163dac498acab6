"""The security headers of every response (added by the HTTP edge, app/http/observe.py)."""

from __future__ import annotations

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


def webapp_csp() -> str:
    """The web app's pages (app/http/webapp.py), in every profile: Vite's build has no inline
    script or style, so scripts, styles and requests of our origin only. uPlot draws on a
    canvas and sizes it through the CSSOM (`element.style`), which style-src does not govern;
    the bundle needs no `data:` source."""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


_PROD = (
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
)


def security_headers(*, production: bool) -> tuple[tuple[bytes, bytes], ...]:
    """What every response carries (the HTTP edge adds them: app/http/observe.py)."""
    return _COMMON + (_PROD if production else (_DEV_CSP,))


NO_STORE = (b"cache-control", b"no-store")
"""On answers to credentialed requests: an answer for one user must not be kept by shared
caches."""
CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key", b"cookie"})

"""GraphQL-over-HTTP conformance of the prod profile: graphql-http's audit suite (npm
`graphql-http`, tests/audit/audit.mjs) against `propintel serve` in a process of its own.

Every audit that fails a MUST (`error`) or a SHOULD (`warn`) fails this test; failed MAYs
(`notice`) are shown but allowed. scripts/bootstrap installs tests/audit/node_modules; this test
installs it too (`npm ci`) when it is missing.

The audit runs twice. As it is, its requests are those of a plain client: its three GETs of a
query carry no CSRF preflight header, so the gate's CSRF prevention refuses them (400) and the
three MAYs that accept GETs (5A70, D6D5, 6A70) are the only notices, and must be. The spec
allows that: a server MUST accept POST and MAY accept GET. Then with `X-Propintel-CSRF: 1` on
every request (a `fetch` wrapper loaded with `node --import`), as a client of our GETs sends
it: every audit, those three included, must pass.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.live import live_server

AUDIT_DIR = Path(__file__).resolve().parent / "audit"
# Audits this service deliberately fails, by graphql-http audit id, with the reason; each is
# passed to audit.mjs as `--waive ID=reason`. Keep it empty unless a failure is a decision
# (a waived audit that starts passing is reported as `waiver-unused`).
WAIVED: dict[str, str] = {}
# What the gate's CSRF prevention refuses: GETs without a preflight header (app/http/gate.py).
GET_MAYS = {"5A70", "D6D5", "6A70"}
WITH_CSRF_HEADER = (
    "data:text/javascript,const send = globalThis.fetch; globalThis.fetch = (input, init = {}) "
    "=> { const headers = new Headers(init.headers); headers.set('x-propintel-csrf', '1'); "
    "return send(input, { ...init, headers }); };"
)


def _node_modules() -> None:
    if (AUDIT_DIR / "node_modules" / "graphql-http" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"{AUDIT_DIR}/node_modules is missing and npm is not installed")
    subprocess.run(
        [npm, "ci", "--prefix", str(AUDIT_DIR), "--no-audit", "--no-fund"],
        check=True,
        capture_output=True,
        timeout=300,
    )


def _describe(line: str) -> str:
    try:
        result = json.loads(line)
    except ValueError:
        return line
    return (
        f"{result.get('status', '?'):>7} {result.get('id')} {result.get('name')}: "
        f"{result.get('reason', '')} [HTTP {result.get('httpStatus')} "
        f"{result.get('contentType')}] {result.get('body') or ''}"
    )


def test_graphql_over_http_audit_of_the_prod_profile(postgres_url: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the graphql-http audit needs Node.js 18+")
    _node_modules()
    env = {
        "DATABASE_URL": postgres_url,
        "PROPINTEL_PROFILE": "prod",
        "JWT_SECRET": secrets.token_hex(24),  # 48 characters
        "ADMIN_API_KEY": secrets.token_hex(12),  # 24 characters
        "PROPINTEL_CACHE_WARM": "0",
        "PROPINTEL_INITIAL_LOAD": "none",
    }
    waivers = [
        argument for id_, reason in WAIVED.items() for argument in ("--waive", f"{id_}={reason}")
    ]
    with live_server(env) as base:
        runs = {
            name: subprocess.run(
                [node, *preload, str(AUDIT_DIR / "audit.mjs"), f"{base}/graphql", *waivers],
                capture_output=True,
                text=True,
                timeout=120,
            )
            for name, preload in (("plain", []), ("csrf header", ["--import", WITH_CSRF_HEADER]))
        }
    for name, audit in runs.items():
        lines = [line for line in audit.stdout.splitlines() if line.strip()]
        report = "\n".join(_describe(line) for line in lines)
        assert audit.returncode != 2, f"{name}: the audit could not run:\n{audit.stderr}\n{report}"
        assert audit.returncode == 0, (
            f"{name}: graphql-http audit of the prod profile failed ({audit.stderr.strip()}):\n"
            f"{report}"
        )
        notices = [r for r in map(json.loads, lines) if r.get("status") == "notice"]
        if name == "plain":
            assert {r["id"] for r in notices} == GET_MAYS, f"{name}: notices:\n{report}"
            for notice in notices:
                assert notice["httpStatus"] == 400, report
                assert "X-Propintel-CSRF" in (notice.get("body") or ""), report
        else:
            assert not notices, f"{name}: every MAY should pass too:\n{report}"

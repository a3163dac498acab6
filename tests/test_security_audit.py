"""GraphQL-over-HTTP conformance of the prod profile: graphql-http's audit suite (npm
`graphql-http`, tests/audit/audit.mjs) against `propintel serve` in a process of its own.

Every audit that fails a MUST (`error`) or a SHOULD (`warn`) fails this test; failed MAYs
(`notice`) are shown but allowed. scripts/bootstrap installs tests/audit/node_modules; this test
installs it too (`npm ci`) when it is missing.
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
        audit = subprocess.run(
            [node, str(AUDIT_DIR / "audit.mjs"), f"{base}/graphql", *waivers],
            capture_output=True,
            text=True,
            timeout=120,
        )
    lines = [line for line in audit.stdout.splitlines() if line.strip()]
    report = "\n".join(_describe(line) for line in lines)
    assert audit.returncode != 2, f"the audit could not run:\n{audit.stderr}\n{report}"
    assert audit.returncode == 0, (
        f"graphql-http audit of the prod profile failed ({audit.stderr.strip()}):\n{report}"
    )

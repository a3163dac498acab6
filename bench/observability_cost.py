"""What metrics, logs and tracing-off cost on the bench path (issue 15): this tree's server
against the same server as it was before them, side by side on the same database.

    PYTHONPATH=. .venv/bin/python bench/observability_cost.py [--base 5dea7e0] [--rounds 6]

The base is a git worktree of `--base` (default: the last commit before issue 15) run with
this checkout's .venv (PYTHONPATH puts the worktree's packages first). Both serve one
process in the prod profile: this tree as it ships (JSON access line per request at `info`,
Prometheus multiprocess metrics, tracing off), the base as bench/run ran it. wrk drives each
in turn (`bench/graphql.lua`, 16 connections), rounds alternated ABBA, for the hot path (Q1
from the whole-operation cache, L1 and Redis) and the uncached path (Q1 and Q2 with the cache
off). Throughput ratios head/base are the figures; 1.0 means free.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.run import (
    PROPERTY_FIELDS,
    REDIS_URL,
    ROOT,
    SALE_FIELDS,
    body,
    log,
    ours_env,
    ours_page,
    psql,
    server,
    wrk,
)

BASE = "5dea7e0"
HEAD_PORT, BASE_PORT = 8311, 8312
Q1 = f"""query($id: ID!) {{ property(id: $id) {{ {PROPERTY_FIELDS}
    sales(first: 10) {{ edges {{ node {{ {SALE_FIELDS} }} }} }} }} }}"""


def worktree(ref: str) -> Path:
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", ref],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = ROOT / "bench" / f".base-{sha}"
    if not path.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), sha],
            check=True,
            capture_output=True,
        )
    return path


@contextmanager
def serving(tree: Path, port: int, *, cached: bool, namespace: str, head: bool) -> Iterator[str]:
    env = {
        **ours_env(cached=cached, namespace=namespace),
        "PYTHONPATH": str(tree),
        "PROPINTEL_WORKER": "false",
        "REDIS_URL": REDIS_URL if cached else "",
    }
    # -P: without it `-m` puts the current directory (this checkout) ahead of PYTHONPATH, and
    # the "base" would run this tree's code.
    command = [sys.executable, "-P", "-m", "app.cli", "serve", "--port", str(port)]
    # The head as it ships: the access line is an `info` event. The base as bench/run ran it.
    command += ["--log-level", "info" if head else "warning"]
    with server(command, port, env) as url:
        yield url


def measure(
    urls: dict[str, str], bodies: list[dict[str, Any]], rounds: int, seconds: float
) -> dict[str, float]:
    for url in urls.values():
        wrk(url, bodies, 2)  # warm-up: connections, caches
    totals: dict[str, list[float]] = {name: [0, 0.0, 0] for name in urls}
    order = list(urls)
    for round_number in range(rounds):
        for name in order if round_number % 2 == 0 else reversed(order):
            summary = wrk(urls[name], bodies, seconds)
            totals[name][0] += summary["requests"]
            totals[name][1] += summary["duration_us"] / 1e6
            totals[name][2] += (
                summary["socket_errors"] + summary["non_2xx"] + summary["graphql_errors"]
            )
    return {
        **{f"{name}_rps": requests / elapsed for name, (requests, elapsed, _) in totals.items()},
        **{f"{name}_errors": errors for name, (_, _, errors) in totals.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default=BASE)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is missing: run bench/run once (it installs it) or apt-get install wrk"
        )
    base_tree = worktree(args.base)
    # The bench's own Q1 and Q2 (bench/run.py): a property with 10+ sales, NEWTOWN 2042.
    property_id = psql(
        "SELECT property_id FROM sales GROUP BY property_id HAVING count(*) >= 10 "
        "ORDER BY property_id LIMIT 1"
    )
    global_id = base64.urlsafe_b64encode(f"Property:{property_id}".encode()).decode()
    q1 = [body(Q1, id=global_id)]
    q2 = [body(ours_page(20, 5), name="NEWTOWN", postcode="2042")]
    results: dict[str, dict[str, float]] = {}
    for label, cached, queries in (
        ("hot Q1 (whole-operation cache)", True, {"Q1": q1}),
        ("uncached", False, {"Q1": q1, "Q2": q2}),
    ):
        with ExitStack() as stack:
            namespace = f"obs{os.getpid()}"
            urls = {
                "head": stack.enter_context(
                    serving(ROOT, HEAD_PORT, cached=cached, namespace=namespace + "h", head=True)
                ),
                "base": stack.enter_context(
                    serving(
                        base_tree, BASE_PORT, cached=cached, namespace=namespace + "b", head=False
                    )
                ),
            }
            for name, bodies in queries.items():
                figures = measure(urls, bodies, args.rounds, args.duration)
                figures["ratio"] = figures["head_rps"] / figures["base_rps"]
                results[f"{label}: {name}"] = figures
                log(
                    f"{label} {name}: head {figures['head_rps']:.0f}/s, base "
                    f"{figures['base_rps']:.0f}/s, head/base {figures['ratio']:.3f}"
                )
    print(json.dumps({"base": args.base, "results": results}, indent=2))


if __name__ == "__main__":
    main()

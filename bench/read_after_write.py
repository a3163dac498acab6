"""Read after write across processes: after a write on process A, how long the first read of
the written entity takes on process B, beside a normal miss and a normal hit on B.

    .venv/bin/python -m bench.read_after_write                   # propintel_raw_bench, 40 + 40 rounds
    .venv/bin/python -m bench.read_after_write --rounds 100 --json out.json
    .venv/bin/python -m bench.read_after_write --base 79d9c5c    # A/B: that commit, then this tree
    .venv/bin/python -m bench.read_after_write --write invalidate \
        --database-url postgresql://postgres@127.0.0.1:5432/propintel_full   # read-only data

Two `propintel serve` processes (prod profile, one worker each, cache on: L1 + Redis in a
namespace of their own, started the way bench/run.py starts propintel) on one database. Each
round takes a property not read before and on B: reads it (a miss: L1, L2 and the database),
reads it again (a hit), then changes it on A (`updateProperty`, a new `propertyName`) and, as
soon as A's answer is back, reads it on B (the first read after the write; in every other
round A reads it too, at the same moment) and checks the answer carries the new name. A read
that does not (B has not heard of the write yet) is counted as stale and the read is repeated
until it is fresh: the figure is then the time from the write's answer to B's first fresh
answer.

The write is not harmless (property names change), so the default database is one of the
bench's own: `propintel_raw_bench`, made on first use from one year of the shared data
(`propintel load-data --years 2024`). `--write invalidate` changes nothing in the database
(A invalidates what the write would) for a read-only one. `measure()` is what bench/run.py
calls; `--base REF` runs commit REF's app (`git archive`, this .venv) and this tree's
alternately, `--repeats` times each.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.run import BENCH_ADMIN, PG_BASE, REDIS_URL, ROOT, ours_env, psql, server

DATABASE = "propintel_raw_bench"
YEAR = "2024"
PORTS = (8611, 8612)

READ = """query($id: ID!) { property(id: $id) { id propertyName vgPropertyId streetName
    houseNumber lastSalePrice sales(first: 10) { edges { node { contractDate price dealingNumber } } } } }"""
WRITE = """mutation($id: ID!, $name: String!) {
    updateProperty(id: $id, input: {propertyName: $name}) { id propertyName } }"""
INVALIDATE = """mutation($tags: [String!]) { invalidateCache(tags: $tags) { l2Entries } }"""
STATS = """{ cacheStats { tiers { tier hits misses } } }"""


def ensure_database(database: str = DATABASE) -> str:
    """The bench's own database, loaded with one year of the shared data on first use."""
    url = f"{PG_BASE}/{database}"
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'", "postgres")
    if exists.strip() != "1":
        psql(f'CREATE DATABASE "{database}"', "postgres")
    if psql("SELECT to_regclass('public.sales') IS NOT NULL", database).strip() != "t" or (
        int(psql("SELECT count(*) FROM sales", database)) == 0
    ):
        data = ROOT.parent / "shared" / "data"
        subprocess.run(
            [str(ROOT / ".venv/bin/propintel"), "load-data", "--years", YEAR, "--quiet", str(data)],
            env={**os.environ, "DATABASE_URL": url},
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return url


def property_ids(database: str, count: int, seed: str = "") -> list[str]:
    """Global ids of `count` properties with sales, drawn by `seed`."""
    rows = psql(
        "SELECT property_id FROM sales GROUP BY property_id "
        f"ORDER BY md5(property_id::text || '{seed}') LIMIT {count}",
        database,
    )
    return [
        base64.urlsafe_b64encode(f"Property:{int(line)}".encode()).decode()
        for line in rows.split()
        if line.strip()
    ]


def export_tree(ref: str) -> Path:
    """The tree of commit `ref` in a temporary directory (`git archive`: no worktree)."""
    path = Path(tempfile.mkdtemp(prefix="raw-base-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(path)], input=archive, check=True)
    return path


@contextmanager
def two_servers(
    database_url: str, namespace: str, tree: Path | None = None
) -> Iterator[tuple[str, str]]:
    """`propintel serve` twice (A, B) on one database and Redis namespace; `tree`: run that
    source tree's app instead of this one (with this checkout's .venv; `-P` so the current
    directory does not put this checkout's packages first)."""
    env = ours_env(cached=True, namespace=namespace) | {"DATABASE_URL": database_url}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    with ExitStack() as stack:
        urls = []
        for port in PORTS:
            command = [sys.executable, "-P", "-m", "app.cli", "serve", "--port", str(port)]
            command += ["--workers", "1", "--log-level", "warning"]
            urls.append(stack.enter_context(server(command, port, env)))
        yield urls[0], urls[1]


def forget_namespace(namespace: str) -> None:
    """Deletes the run's Redis keys (entries, tags, counters) once its servers are gone."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def measure(
    database_url: str | None = None,
    *,
    rounds: int = 40,
    database: str = DATABASE,
    pause_s: float = 0.05,
    tree: Path | None = None,
    write: str = "update",
) -> dict[str, Any]:
    """Times, on process B, the first read of a property just changed on process A, a normal
    miss and a normal hit, over `rounds` rounds of each kind (a new property each):

    - `alone`: the write's answer comes back, then B is asked for the property;
    - `both`: the write's answer comes back, then A and B are asked for it at once (the
      writer's client reads its write back while another client reads on B), so the two
      processes miss the same keys together and one waits for the other's load (leases).

    `database_url`: a database to write to (default: the bench's own, made when missing);
    `tree`: another source tree to run (a base commit, `export_tree`); `write="invalidate"`:
    instead of writing, A invalidates what a write to the property would (`invalidateCache`
    with `property_tags`' tags but the locality's), which leaves the data as it was: for a
    read-only database such as propintel_full. B's read is then fresh when it misses the
    whole-operation cache (the response cached before was dropped)."""
    assert write in {"update", "invalidate"}
    url = database_url or ensure_database(database)
    name = database_url.rsplit("/", 1)[-1] if database_url else database
    namespace = f"raw{os.getpid()}{uuid.uuid4().hex[:6]}"
    ids = property_ids(name, 2 * rounds + 1, seed=namespace)
    first: dict[str, list[float]] = {"alone": [], "both": []}
    misses: list[float] = []
    hits: list[float] = []
    stale_reads = 0
    tag = uuid.uuid4().hex[:6]
    with (
        two_servers(url, namespace, tree) as (a, b),
        httpx.Client(timeout=30) as http_a,
        httpx.Client(timeout=30) as http_b,
        ThreadPoolExecutor(2) as pool,
    ):

        def read(http: httpx.Client, base: str, property_id: str) -> tuple[float, str]:
            """Seconds, and what tells the answer is fresh: the name, or the cache's answer."""
            started = time.perf_counter()
            response = http.post(base, json={"query": READ, "variables": {"id": property_id}})
            elapsed = time.perf_counter() - started
            body = response.json()
            assert "errors" not in body, body
            if write == "invalidate":
                return elapsed, response.headers["x-cache"]
            return elapsed, body["data"]["property"]["propertyName"]

        def fresh_on_b(property_id: str, fresh: str, since: float) -> tuple[float, int]:
            stale = 0
            while read(http_b, b, property_id)[1] != fresh:
                stale += 1
            return time.perf_counter() - since, stale

        def change(property_id: str, new_name: str) -> str:
            if write == "invalidate":
                number = base64.urlsafe_b64decode(property_id).decode().split(":")[1]
                variables = {"tags": [f"property:{number}", "list:properties"]}
                answer = http_a.post(
                    a, json={"query": INVALIDATE, "variables": variables}, headers=BENCH_ADMIN
                ).json()
                assert "errors" not in answer, answer
                return "miss"
            update: dict[str, str] = {"id": property_id, "name": new_name}
            written = http_a.post(
                a, json={"query": WRITE, "variables": update}, headers=BENCH_ADMIN
            ).json()
            assert written["data"]["updateProperty"]["propertyName"] == new_name, written
            return new_name

        time.sleep(0.5)  # both subscribe to invalidations as they start
        for _ in range(20):  # warm both processes' connections and plans
            read(http_a, a, ids[0])
            read(http_b, b, ids[0])
        for round_, property_id in enumerate(ids[1:]):
            kind = "alone" if round_ % 2 == 0 else "both"
            misses.append(read(http_b, b, property_id)[0])
            hits.append(read(http_b, b, property_id)[0])
            fresh = change(property_id, f"RAW {tag} {round_}")
            returned = time.perf_counter()
            if kind == "both":
                on_a = pool.submit(read, http_a, a, property_id)
                on_b = pool.submit(fresh_on_b, property_id, fresh, returned)
                on_a.result()
                elapsed, stale = on_b.result()
            else:
                elapsed, stale = fresh_on_b(property_id, fresh, returned)
            first[kind].append(elapsed)
            stale_reads += stale
            time.sleep(pause_s)  # the write's invalidation settles before the next round
        stats = http_b.post(b, json={"query": STATS}, headers=BENCH_ADMIN).json()["data"]
    forget_namespace(namespace)
    return {
        "database": name,
        "write": write,
        "rounds": rounds,
        "first_read_after_write": _summary(first["alone"]),
        "first_read_after_write_both": _summary(first["both"]),
        "miss": _summary(misses),
        "hit": _summary(hits),
        "stale_reads": stale_reads,
        "reader_cache_stats": stats["cacheStats"],
    }


FIGURES = ("first_read_after_write", "first_read_after_write_both", "miss", "hit")


def show(label: str, result: dict[str, Any]) -> None:
    print(f"{label}:")
    for figure in FIGURES:
        summary = result[figure]
        print(
            f"{figure:>30}: median {summary['median_ms']:7.2f} ms  "
            f"p95 {summary['p95_ms']:7.2f} ms  max {summary['max_ms']:7.2f} ms"
        )
    print(f"{'stale reads':>30}: {result['stale_reads']} in {2 * result['rounds']} rounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help=f"a database to write to (default {DATABASE})")
    parser.add_argument("--rounds", type=int, default=40, help="rounds of each kind")
    parser.add_argument("--base", help="also measure this commit, alternating (A/B)")
    parser.add_argument("--repeats", type=int, default=2, help="A/B runs of each side")
    parser.add_argument(
        "--write",
        choices=("update", "invalidate"),
        default="update",
        help="invalidate: no write, the invalidation alone (for a read-only database)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.base is None:
        result: dict[str, Any] = measure(args.database_url, rounds=args.rounds, write=args.write)
        show("head", result)
    else:
        base = export_tree(args.base)
        result = {"base": args.base, "runs": []}
        for repeat in range(args.repeats):
            sides = [("base", base), ("head", None)]
            for label, tree in sides if repeat % 2 == 0 else reversed(sides):
                run = measure(args.database_url, rounds=args.rounds, tree=tree, write=args.write)
                result["runs"].append({"code": label, **run})
                show(f"{label} (run {repeat + 1})", run)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

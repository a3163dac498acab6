"""Side-by-side benchmark: propintel vs PostGraphile 4 on the same PostgreSQL database.

    bench/run                      # everything: data, installs, checks, timings, results JSON
    bench/run --duration 10        # seconds per timed round (default 6)

Steps: make sure the database `propintel_full` holds all of ../shared/data (reused when
present); install PostGraphile 4 from npm into bench/.node and wrk from Debian when missing;
start both servers (one process each, then two workers each); check that both answer every
benchmark query with the same data; then drive each with wrk (warm-up first, A/B alternated)
and print req/s, p50/p95/p99 latency, errors and the ratio ours/PostGraphile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.auth.principal import Role
from app.auth.tokens import AccessTokens

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
NODE_DIR = BENCH / ".node"
POSTGRAPHILE = NODE_DIR / "node_modules" / ".bin" / "postgraphile"
PG_BASE = os.environ.get("PROPINTEL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
DATABASE = "propintel_full"  # shared with `scripts/test --full`
DATABASE_URL = f"{PG_BASE}/{DATABASE}"
OURS_PORT, PEER_PORT = 8101, 8102
CONNECTIONS = 16


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **kwargs)


def psql(sql: str, database: str = DATABASE) -> str:
    return run(
        ["psql", f"{PG_BASE}/{database}", "-v", "ON_ERROR_STOP=1", "-qtAc", sql],
        capture_output=True,
    ).stdout.strip()


# --- setup -----------------------------------------------------------------------------------


def ensure_database() -> None:
    if psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", "postgres") != "1":
        psql(f'CREATE DATABASE "{DATABASE}"', "postgres")
    log("loading ../shared/data (files already loaded are skipped)")
    env = {**os.environ, "DATABASE_URL": DATABASE_URL}
    run(
        [str(ROOT / ".venv/bin/propintel"), "load-data", "--quiet"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    run(["psql", DATABASE_URL, "-v", "ON_ERROR_STOP=1", "-qf", str(BENCH / "postgraphile.sql")])


def ensure_tools() -> None:
    if not POSTGRAPHILE.exists():
        log("installing postgraphile@4 from npm into bench/.node")
        NODE_DIR.mkdir(exist_ok=True)
        run(
            [
                "npm",
                "install",
                "--prefix",
                str(NODE_DIR),
                "--no-audit",
                "--no-fund",
                "--silent",
                "postgraphile@4",
            ]
        )
    if shutil.which("wrk") is None:
        log("installing wrk from Debian")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        run(["apt-get", "install", "-y", "-qq", "wrk"])


@contextmanager
def server(command: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    process = subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{command[0]} exited: {process.stderr.read() if process.stderr else ''}"
                )
            try:
                if httpx.post(url, json={"query": "{ __typename }"}, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not answer on {url}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


BENCH_JWT_SECRET = os.urandom(32).hex()
BENCH_ADMIN = {
    "Authorization": "Bearer "
    + AccessTokens(BENCH_JWT_SECRET, 24 * 3600).issue(1, Role.ADMIN).token
}
REDIS_URL = os.environ.get("PROPINTEL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def ours_env(*, cached: bool, namespace: str | None = None) -> dict[str, str]:
    """How the bench runs propintel (also bench/observability_cost.py)."""
    env = {
        "DATABASE_URL": DATABASE_URL,
        "PROPINTEL_PROFILE": "prod",
        "PROPINTEL_CACHE_ENABLED": "true" if cached else "false",
        "PROPINTEL_INITIAL_LOAD": "none",
        "PROPINTEL_DB_POOL_SIZE": "16",
        # The prod profile refuses to start without its secrets.
        "JWT_SECRET": BENCH_JWT_SECRET,
        "ADMIN_API_KEY": os.urandom(16).hex(),
        # One client address sends everything here; the peer has no rate limits either.
        "PROPINTEL_RATE_LIMIT_ENABLED": "false",
        "PROPINTEL_TRAIN_ON_START": "false",  # no background training during measurements
    }
    if cached:
        env |= {
            "REDIS_URL": REDIS_URL,
            "PROPINTEL_CACHE_NAMESPACE": namespace or f"bench{os.getpid()}",
            "PROPINTEL_CACHE_WARM": "0",
        }
    return env


def ours(workers: int, *, cached: bool = False) -> Any:
    env = ours_env(cached=cached)
    command = [
        str(ROOT / ".venv/bin/propintel"),
        "serve",
        "--port",
        str(OURS_PORT),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    return server(command, OURS_PORT, env)


def peer(workers: int) -> Any:
    command = [
        str(POSTGRAPHILE),
        "-c",
        DATABASE_URL,
        "--host",
        "127.0.0.1",
        "--port",
        str(PEER_PORT),
        "--disable-query-log",
        "--dynamic-json",
        "--no-setof-functions-contain-nulls",
    ]
    if workers > 1:
        command += ["--cluster-workers", str(workers)]
    return server(command, PEER_PORT)


# --- the queries -----------------------------------------------------------------------------


@dataclass
class Query:
    name: str
    description: str
    ours: list[dict[str, Any]]  # request bodies; one is picked at random per request
    peer: list[dict[str, Any]]
    normalise_ours: Callable[[dict[str, Any]], Any]
    normalise_peer: Callable[[dict[str, Any]], Any]


SALE_FIELDS = "contractDate price dealingNumber"
PROPERTY_FIELDS = "vgPropertyId strataLot streetName houseNumber lastSalePrice"


def _sales(nodes: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    return [(s["contractDate"], int(s["price"]), s["dealingNumber"]) for s in nodes]


def _property(node: dict[str, Any], sales: list[dict[str, Any]]) -> tuple[Any, ...]:
    return (
        node["vgPropertyId"],
        node["strataLot"] or None,
        node["streetName"],
        node["houseNumber"],
        int(node["lastSalePrice"]),
        _sales(sales),
    )


def ours_property(node: dict[str, Any]) -> tuple[Any, ...]:
    return _property(node, [e["node"] for e in node["sales"]["edges"]])


def peer_property(node: dict[str, Any]) -> tuple[Any, ...]:
    return _property(node, node["salesByPropertyId"]["nodes"])


def ours_page(first: int, sales: int) -> str:
    return f"""query($name: String!, $postcode: String!, $after: String) {{
      properties(first: {first}, after: $after, filter: {{localityName: $name, postcode: $postcode}}) {{
        pageInfo {{ endCursor }}
        edges {{ node {{ {PROPERTY_FIELDS} sales(first: {sales}) {{ edges {{ node {{ {SALE_FIELDS} }} }} }} }} }} }} }}"""


def peer_page(first: int, sales: int) -> str:
    return f"""query($locality: BigInt!, $after: Cursor) {{
      allProperties(first: {first}, after: $after, orderBy: ID_ASC, condition: {{localityId: $locality}}) {{
        pageInfo {{ endCursor }}
        nodes {{ {PROPERTY_FIELDS}
          salesByPropertyId(first: {sales}, orderBy: [CONTRACT_DATE_DESC, ID_DESC]) {{ nodes {{ {SALE_FIELDS} }} }} }} }} }}"""


def body(query: str, **variables: Any) -> dict[str, Any]:
    return {"query": query, "variables": variables}


def walk_cursor(
    url: str, request: dict[str, Any], pages: int, cursor_of: Callable[[dict[str, Any]], str]
) -> str:
    after = None
    for _ in range(pages):
        payload = {**request, "variables": {**request["variables"], "after": after}}
        after = cursor_of(httpx.post(url, json=payload, timeout=30).json()["data"])
    assert after is not None
    return after


def build_queries(ours_url: str, peer_url: str) -> list[Query]:
    property_id = int(
        psql(
            "SELECT property_id FROM sales GROUP BY property_id HAVING count(*) >= 10 ORDER BY property_id LIMIT 1"
        )
    )
    locality_id = int(
        psql("SELECT id FROM localities WHERE name = 'NEWTOWN' AND postcode = '2042'")
    )
    random_localities = [
        line.split("|")
        for line in psql(
            "SELECT l.id, l.name, l.postcode FROM localities l JOIN ("
            "SELECT locality_id FROM properties WHERE deleted_at IS NULL GROUP BY locality_id "
            "HAVING count(*) >= 20) big ON big.locality_id = l.id ORDER BY md5(l.id::text) LIMIT 200"
        ).splitlines()
        if "|" in line
    ]
    import base64

    global_id = base64.urlsafe_b64encode(f"Property:{property_id}".encode()).decode()
    q1_ours = f"""query($id: ID!) {{ property(id: $id) {{ {PROPERTY_FIELDS}
        sales(first: 10) {{ edges {{ node {{ {SALE_FIELDS} }} }} }} }} }}"""
    q1_peer = f"""query($id: BigInt!) {{ propertyById(id: $id) {{ {PROPERTY_FIELDS}
        salesByPropertyId(first: 10, orderBy: [CONTRACT_DATE_DESC, ID_DESC]) {{ nodes {{ {SALE_FIELDS} }} }} }} }}"""
    stats = "salesCount medianPrice p25Price p75Price medianPricePerM2"
    q3_ours = f"{{ localities(first: 20) {{ edges {{ node {{ name postcode stats {{ {stats} }} }} }} }} }}"
    q3_peer = (
        f"{{ allLocalities(first: 20, orderBy: [NAME_ASC, POSTCODE_ASC, ID_ASC]) "
        f"{{ nodes {{ name postcode stats {{ {stats} }} }} }} }}"
    )

    def stats_rows(nodes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        def rounded(value: Any) -> Any:
            return None if value is None else round(float(value), 2)

        return [
            (
                n["name"],
                n["postcode"],
                int(n["stats"]["salesCount"]),
                *(rounded(n["stats"][k]) for k in stats.split()[1:]),
            )
            for n in nodes
        ]

    ours_q2 = body(ours_page(20, 5), name="NEWTOWN", postcode="2042")
    peer_q2 = body(peer_page(20, 5), locality=locality_id)
    ours_after = walk_cursor(
        ours_url, ours_q2, 49, lambda d: d["properties"]["pageInfo"]["endCursor"]
    )
    peer_after = walk_cursor(
        peer_url, peer_q2, 49, lambda d: d["allProperties"]["pageInfo"]["endCursor"]
    )
    return [
        Query(
            "Q1",
            "one property by id with its last 10 sales",
            [body(q1_ours, id=global_id)],
            [body(q1_peer, id=str(property_id))],
            lambda d: ours_property(d["property"]),
            lambda d: peer_property(d["propertyById"]),
        ),
        Query(
            "Q2",
            "20 properties of one locality, each with its last 5 sales",
            [ours_q2],
            [peer_q2],
            lambda d: [ours_property(e["node"]) for e in d["properties"]["edges"]],
            lambda d: [peer_property(n) for n in d["allProperties"]["nodes"]],
        ),
        Query(
            "Q3",
            "20 localities with their statistics",
            [body(q3_ours)],
            [body(q3_peer)],
            lambda d: stats_rows([e["node"] for e in d["localities"]["edges"]]),
            lambda d: stats_rows(d["allLocalities"]["nodes"]),
        ),
        Query(
            "Q4",
            "page 50 of a locality walk (keyset cursor)",
            [{**ours_q2, "variables": {**ours_q2["variables"], "after": ours_after}}],
            [{**peer_q2, "variables": {**peer_q2["variables"], "after": peer_after}}],
            lambda d: [ours_property(e["node"]) for e in d["properties"]["edges"]],
            lambda d: [peer_property(n) for n in d["allProperties"]["nodes"]],
        ),
        Query(
            "Q2R",
            "Q2 over 200 random localities (cache-unfriendly)",
            [
                body(ours_page(20, 5), name=name, postcode=code)
                for _, name, code in random_localities
            ],
            [body(peer_page(20, 5), locality=int(i)) for i, _, _ in random_localities],
            lambda d: [ours_property(e["node"]) for e in d["properties"]["edges"]],
            lambda d: [peer_property(n) for n in d["allProperties"]["nodes"]],
        ),
    ]


def check_same_answers(queries: list[Query], ours_url: str, peer_url: str) -> None:
    for query in queries:
        for ours_body, peer_body in list(zip(query.ours, query.peer, strict=True))[:20]:
            mine = httpx.post(ours_url, json=ours_body, timeout=60).json()
            theirs = httpx.post(peer_url, json=peer_body, timeout=60).json()
            for name, answer in (("propintel", mine), ("postgraphile", theirs)):
                if answer.get("errors") or not answer.get("data"):
                    raise SystemExit(f"{query.name}: {name} answered with errors: {answer}")
            if query.normalise_ours(mine["data"]) != query.normalise_peer(theirs["data"]):
                raise SystemExit(
                    f"{query.name}: the two servers disagree for {ours_body['variables']}"
                )
        log(f"{query.name}: same data from both servers")


# --- load ------------------------------------------------------------------------------------


@dataclass
class Measurement:
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk(url: str, bodies: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        handle.write("\n".join(json.dumps(b, separators=(",", ":")) for b in bodies) + "\n")
    try:
        result = run(
            [
                "wrk",
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{round(seconds)}s",
                "-s",
                str(BENCH / "graphql.lua"),
                url,
                "--",
                handle.name,
            ],
            capture_output=True,
        )
    finally:
        os.unlink(handle.name)
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def plain_rps(url: str, seconds: float, rounds: int) -> float:
    """GETs of `url` (no script): the rate of the server's cheapest answer, a floor that
    the hot path's rate is compared with in the same run."""
    run(["wrk", "-t1", f"-c{CONNECTIONS}", "-d2s", url], capture_output=True)  # warm-up
    requests = elapsed = 0.0
    for _ in range(rounds):
        output = run(
            ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{round(seconds)}s", url], capture_output=True
        ).stdout
        found = re.search(r"(\d+) requests in ([\d.]+)(m?s)", output)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors", output)
        if found is None or errors is not None:
            raise RuntimeError(f"wrk on {url}: {output}")
        requests += int(found[1])
        elapsed += float(found[2]) / (1000 if found[3] == "ms" else 1)
    return requests / elapsed


def measure(
    queries: list[Query], ours_url: str, peer_url: str, *, seconds: float, rounds: int
) -> dict[str, dict[str, Measurement]]:
    results: dict[str, dict[str, Measurement]] = {}
    for index, query in enumerate(queries):
        sides = {"propintel": (ours_url, query.ours), "postgraphile": (peer_url, query.peer)}
        for url, bodies in sides.values():
            wrk(url, bodies, 2)  # warm-up: connections, caches, JIT
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        order = list(sides)
        for round_number in range(rounds):
            # A/B alternated, and which goes first alternates too (ABBA...).
            for name in order if (round_number + index) % 2 == 0 else reversed(order):
                url, bodies = sides[name]
                runs[name].append(wrk(url, bodies, seconds))
        results[query.name] = {}
        for name, samples in runs.items():
            results[query.name][name] = Measurement(
                requests=sum(s["requests"] for s in samples),
                seconds=sum(s["duration_us"] for s in samples) / 1e6,
                errors=sum(
                    s["socket_errors"] + s["non_2xx"] + s["graphql_errors"] for s in samples
                ),
                # Percentiles of separate rounds cannot be merged exactly: report the worst round.
                p50_ms=max(s["p50_us"] for s in samples) / 1000,
                p95_ms=max(s["p95_us"] for s in samples) / 1000,
                p99_ms=max(s["p99_us"] for s in samples) / 1000,
            )
        ours_m, peer_m = results[query.name]["propintel"], results[query.name]["postgraphile"]
        log(
            f"{query.name}: propintel {ours_m.rps:,.0f} req/s, postgraphile {peer_m.rps:,.0f} req/s, "
            f"ratio {ours_m.rps / peer_m.rps if peer_m.rps else float('nan'):.2f}"
        )
    return results


def zipf_queries(count: int = 2000, draws: int = 5000, exponent: float = 1.1) -> Query:
    """Q1 over `count` properties drawn with Zipf weights: a realistic skew (a few hot
    properties, a long tail), replayed as wrk picks bodies uniformly from the draws."""
    ids = [
        int(line)
        for line in psql(
            "SELECT property_id FROM sales GROUP BY property_id HAVING count(*) >= 3 "
            f"ORDER BY md5(property_id::text) LIMIT {count}"
        ).split()
    ]
    rng = random.Random(11)
    weights = [1 / (rank + 1) ** exponent for rank in range(len(ids))]
    drawn = rng.choices(ids, weights, k=draws)
    ours_query = f"""query($id: ID!) {{ property(id: $id) {{ {PROPERTY_FIELDS}
        sales(first: 10) {{ edges {{ node {{ {SALE_FIELDS} }} }} }} }} }}"""
    peer_query = f"""query($id: BigInt!) {{ propertyById(id: $id) {{ {PROPERTY_FIELDS}
        salesByPropertyId(first: 10, orderBy: [CONTRACT_DATE_DESC, ID_DESC]) {{ nodes {{ {SALE_FIELDS} }} }} }} }}"""
    import base64

    return Query(
        "ZIPF",
        f"Q1 over {count} properties, Zipf(s={exponent}) replay",
        [
            body(ours_query, id=base64.urlsafe_b64encode(f"Property:{i}".encode()).decode())
            for i in drawn
        ],
        [body(peer_query, id=str(i)) for i in drawn],
        lambda d: ours_property(d["property"]),
        lambda d: peer_property(d["propertyById"]),
    )


def cache_report(url: str) -> dict[str, Any]:
    query = """{ cacheStats { tiers { tier hits misses hitRate entries evictions
        resources { resource hits misses hitRate entries } } } }"""
    response = httpx.post(
        url,
        json={"query": query},
        headers=BENCH_ADMIN,
        timeout=30,
    ).json()
    return dict(response["data"]["cacheStats"])


def reset_cache(url: str) -> None:
    httpx.post(
        url,
        json={"query": 'mutation { invalidateCache(patterns: ["*"]) { l2Entries } }'},
        headers=BENCH_ADMIN,
        timeout=30,
    ).raise_for_status()


def table(title: str, queries: list[Query], results: dict[str, dict[str, Measurement]]) -> str:
    lines = [
        title,
        f"{'query':5} {'server':13} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}  ratio ours/peer",
    ]
    for query in queries:
        row = results[query.name]
        for name in ("propintel", "postgraphile"):
            m = row[name]
            ratio = ""
            if name == "propintel" and row["postgraphile"].rps:
                ratio = f"  {m.rps / row['postgraphile'].rps:.2f}"
            lines.append(
                f"{query.name:5} {name:13} {m.rps:8,.0f} {m.p50_ms:8.1f} {m.p95_ms:8.1f} {m.p99_ms:8.1f} {m.errors:7d}{ratio}"
            )
    return "\n".join(lines)


def cached_runs(report: dict[str, Any], seconds: float, rounds: int) -> list[str]:
    """Cache on (L1 + Redis), one process against PostGraphile's one: hot Q1/Q2 (the same
    request over and over, after warm-up) and a Zipf replay whose hit rate cacheStats gives."""
    tables = []
    with ours(1, cached=True) as ours_url, peer(1) as peer_url:
        log("servers up (cache on)")
        queries = [q for q in build_queries(ours_url, peer_url) if q.name in {"Q1", "Q2"}]
        check_same_answers(queries, ours_url, peer_url)
        hot = measure(queries, ours_url, peer_url, seconds=seconds, rounds=rounds)
        healthz = plain_rps(ours_url.replace("/graphql", "/healthz"), seconds, rounds)
        zipf = zipf_queries()
        check_same_answers([zipf], ours_url, peer_url)
        reset_cache(ours_url)
        before = cache_report(ours_url)
        replay = measure([zipf], ours_url, peer_url, seconds=seconds, rounds=rounds)
        after = cache_report(ours_url)
    hit_rate = _delta_hit_rate(before, after)
    log(f"ZIPF: whole-operation cache hit rate {hit_rate:.1%} (cacheStats)")
    report["cases"]["1_process_cached"] = {
        name: {
            **{side: {**asdict(m), "rps": round(m.rps, 1)} for side, m in sides.items()},
            "ratio": round(sides["propintel"].rps / sides["postgraphile"].rps, 3),
        }
        for name, sides in {**hot, **replay}.items()
    }
    report["cases"]["1_process_cached"]["ZIPF"]["operation_hit_rate"] = round(hit_rate, 4)
    report["cases"]["1_process_cached"]["healthz_rps"] = round(healthz, 1)
    over_healthz = {name: hot[name]["propintel"].rps / healthz for name in hot}
    report["cases"]["1_process_cached"]["hot_over_healthz"] = {
        name: round(ratio, 3) for name, ratio in over_healthz.items()
    }
    report["cache_stats_after_replay"] = after
    tables.append(table("\n1 process each, propintel cache on (hot):", queries, hot))
    tables.append(table("\nZipf replay, cache on:", [zipf], replay))
    tables.append(f"ZIPF operation-cache hit rate: {hit_rate:.1%}")
    tables.append(
        f"/healthz of the same server: {healthz:,.0f} req/s; hot over /healthz: "
        + ", ".join(f"{name} {ratio:.2f}" for name, ratio in over_healthz.items())
    )
    return tables


def _delta_hit_rate(before: dict[str, Any], after: dict[str, Any]) -> float:
    """The replay's own hit rate: counters after minus before (warm-up included in both)."""

    def counts(report: dict[str, Any]) -> tuple[int, int]:
        by_tier = {
            tier["tier"]: next(r for r in tier["resources"] if r["resource"] == "operation")
            for tier in report["tiers"]
        }
        hits = by_tier["l1"]["hits"] + (by_tier["l2"]["hits"] if "l2" in by_tier else 0)
        return hits, by_tier["l1"]["hits"] + by_tier["l1"]["misses"]

    hits_before, total_before = counts(before)
    hits_after, total_after = counts(after)
    total = total_after - total_before
    return (hits_after - hits_before) / total if total else 0.0


def _importable() -> None:
    """`bench/run` runs this file as a script: the package `bench` is then not on the path."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def read_after_write(report: dict[str, Any]) -> list[str]:
    """bench/read_after_write.py: two cached servers; after a real write (`updateProperty`)
    on A, B's first read, beside a normal miss and hit on B. On the bench's own database
    (`propintel_raw_bench`, one year of the data): the write changes what it writes, which
    propintel_full must not see (the full-data tests compare it with the source files)."""
    _importable()
    from bench.read_after_write import FIGURES
    from bench.read_after_write import measure as measure_raw

    log("read after write (two cached servers, a write on A, the first read on B)")
    result = measure_raw(rounds=30)
    report["read_after_write"] = result
    lines = ["\nRead after write (ms, on process B; median / p95):"]
    for figure in FIGURES:
        summary = result[figure]
        lines.append(f"  {figure}: {summary['median_ms']:.1f} / {summary['p95_ms']:.1f}")
    lines.append(f"  stale reads: {result['stale_reads']} in {2 * result['rounds']} rounds")
    return lines


def ingest_against_copy(report: dict[str, Any]) -> list[str]:
    """bench/ingest_floor.py: `propintel load-data` of all the shared data into a fresh
    database, against a raw COPY of the same CSV rows into an unindexed table."""
    _importable()
    from bench.ingest_floor import measure as measure_ingest

    log("load-data of all shared data against a raw COPY of its rows (fresh databases)")
    result = measure_ingest(PG_BASE)
    report["ingest"] = result
    return [
        f"\nIngest of {result['rows']:,} rows ({result['files']} files): raw COPY "
        f"{result['raw_copy_s']:.1f} s, load-data {result['load_data_s']:.1f} s, "
        f"ratio {result['ratio']:.3f}"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=6, help="seconds per timed round")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per server and query")
    parser.add_argument("--single-only", action="store_true", help="skip the two-worker runs")
    parser.add_argument("--skip-cached", action="store_true", help="skip the cache-on runs")
    parser.add_argument("--skip-raw", action="store_true", help="skip the read-after-write figure")
    parser.add_argument(
        "--skip-ingest", action="store_true", help="skip load-data against raw COPY"
    )
    args = parser.parse_args()

    started = time.monotonic()
    ensure_tools()
    ensure_database()
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True
        ).stdout.strip(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "load": {
            "tool": "wrk",
            "threads": 1,
            "connections": CONNECTIONS,
            "seconds_per_round": args.duration,
            "rounds": args.rounds,
        },
        "cases": {},
    }
    tables = []
    for workers in (1,) if args.single_only else (1, 2):
        with ours(workers) as ours_url, peer(workers) as peer_url:
            log(f"servers up ({workers} worker(s) each)")
            queries = build_queries(ours_url, peer_url)
            check_same_answers(queries, ours_url, peer_url)
            results = measure(
                queries, ours_url, peer_url, seconds=args.duration, rounds=args.rounds
            )
        case = f"{workers}_process" if workers == 1 else f"{workers}_workers"
        report["cases"][case] = {
            query.name: {
                "description": query.description,
                **{
                    name: {**asdict(m), "rps": round(m.rps, 1)}
                    for name, m in results[query.name].items()
                },
                "ratio": round(
                    results[query.name]["propintel"].rps / results[query.name]["postgraphile"].rps,
                    3,
                ),
            }
            for query in queries
        }
        tables.append(table(f"\n{workers} process(es) each, uncached:", queries, results))
    if not args.skip_cached:
        tables += cached_runs(report, args.duration, args.rounds)
    out = BENCH / "results" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")  # kept if a later figure fails
    print("\n".join(tables), flush=True)
    tables = []
    if not args.skip_raw:
        tables += read_after_write(report)
    if not args.skip_ingest:
        tables += ingest_against_copy(report)
    report["seconds"] = round(time.monotonic() - started, 1)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n".join(tables))
    print(f"\nresults: {out.relative_to(ROOT)} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()

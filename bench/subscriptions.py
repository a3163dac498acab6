"""Subscriptions at scale: N concurrent `subscription { alerts }` websockets on ONE server
process, then an alert for every subscriber at once; publish-to-receive latency per
subscriber (p50 / p99 / max). Target (issue 14): p99 under 1 s for 1,000 subscribers.

    .venv/bin/python bench/subscriptions.py                  # 1,000 subscribers, PostgreSQL + Redis
    .venv/bin/python bench/subscriptions.py --backend sqlite --subscribers 500 --rounds 10
    .venv/bin/python bench/subscriptions.py --no-deflate   # without permessage-deflate
    PROPINTEL_BENCH_PROFILE=/tmp/server.prof .venv/bin/python bench/subscriptions.py  # cProfile

What it does:

1. A database of its own (PostgreSQL `propintel_bench_subs`, dropped afterwards, or a SQLite
   file), migrated; N users inserted in one statement, each an access token minted with
   app/auth/tokens.py (no password hashing: argon2 would take minutes for 1,000).
2. The server: uvicorn (one process, `app.asgi:create_default_app`, prod profile, no job
   worker, the cache on with Redis in a namespace of its own), as `propintel serve` runs it.
3. The subscribers: a separate client process (this script with `--client`) opens N
   websockets (graphql-transport-ws, the token in connection_init) and subscribes on each.
4. Rounds: the alerts of a round are inserted for every user in one transaction (as the
   worker's set-based matching does), then `AlertBroker.publish(user_ids)` (one Redis
   message, as the worker does after its commit); the client stamps each subscriber's first
   `next` of the round. Latency = receive time - the time just before publish
   (CLOCK_MONOTONIC: one clock for every process on the machine). Round 0 is a warm-up (it
   also proves every subscription is live) and is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_BASE = os.environ.get("PROPINTEL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("PROPINTEL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE = "propintel_bench_subs"
QUERY = "subscription { alerts { id kind createdAt } }"
ROUND_TIMEOUT_S = 20.0


def log(message: str) -> None:
    print(f"[subscriptions {time.strftime('%H:%M:%S')}] {message}", flush=True)


def raise_open_files(wanted: int) -> None:
    """Each websocket is a file descriptor on both sides."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


# --- the client process ----------------------------------------------------------------------


async def client(url: str, tokens: list[str], concurrency: int) -> None:
    from websockets.asyncio.client import connect

    count = len(tokens)
    stamps: list[float | None] = [None] * count
    errors: list[str] = []
    state = {"got": 0}
    all_in = asyncio.Event()
    connected = asyncio.Event()
    ready = {"n": 0}
    gate = asyncio.Semaphore(concurrency)

    async def subscriber(index: int, token: str) -> None:
        async with gate:
            ws = await connect(url, subprotocols=["graphql-transport-ws"], open_timeout=60)  # type: ignore[list-item]
            await ws.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                )
            )
            ack = json.loads(await ws.recv())
            assert ack["type"] == "connection_ack", ack
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUERY}}))
        ready["n"] += 1
        if ready["n"] == count:
            connected.set()
        async with ws:
            async for raw in ws:
                now = time.monotonic()
                message = json.loads(raw)
                if message["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                elif message["type"] == "next" and "errors" not in message["payload"]:
                    if stamps[index] is None:
                        stamps[index] = now
                        state["got"] += 1
                        if state["got"] == count:
                            all_in.set()
                else:
                    errors.append(raw if isinstance(raw, str) else raw.decode())

    started = time.monotonic()
    tasks = [asyncio.create_task(subscriber(i, token)) for i, token in enumerate(tokens)]
    waiting = asyncio.create_task(connected.wait())
    done, _ = await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if waiting not in done:
        for task in done:
            task.result()  # raises why a subscriber failed
    print(json.dumps({"ready": count, "seconds": time.monotonic() - started}), flush=True)

    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if not line or line == "quit":
            break
        round_number = int(line.split()[1])
        stamps[:] = [None] * count
        state["got"] = 0
        all_in.clear()
        print(json.dumps({"armed": round_number}), flush=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ROUND_TIMEOUT_S):
                await all_in.wait()
        print(
            json.dumps({"round": round_number, "stamps": stamps, "errors": errors[:5]}), flush=True
        )
        errors.clear()
    for task in tasks:
        task.cancel()


# --- the parent: database, server, rounds ----------------------------------------------------


def psql(sql: str, database: str = "postgres") -> None:
    subprocess.run(
        ["psql", f"{PG_BASE}/{database}", "-v", "ON_ERROR_STOP=1", "-qtAc", sql],
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    from db.migrate import upgrade

    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite+aiosqlite:///{directory}/bench.sqlite3"
            upgrade(url)
            yield url
        return
    psql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{DATABASE}"')
    url = f"{PG_BASE.replace('postgresql://', 'postgresql+asyncpg://')}/{DATABASE}"
    try:
        upgrade(url)
        yield url
    finally:
        psql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


async def create_users(url: str, count: int) -> list[int]:
    import sqlalchemy as sa

    from db import tables
    from db.engine import create_engine

    engine = create_engine(url)
    run = uuid.uuid4().hex[:8]
    try:
        async with engine.begin() as conn:
            result = await conn.execute(
                sa.insert(tables.users).returning(tables.users.c.id),
                [
                    {"email": f"bench-{run}-{i}@example.com", "password_hash": "x", "role": "USER"}
                    for i in range(count)
                ],
            )
            return [int(row[0]) for row in result]
    finally:
        await engine.dispose()


@contextlib.contextmanager
def server(env: dict[str, str], port: int, *, deflate: bool) -> Iterator[str]:
    import httpx

    profile = os.environ.get("PROPINTEL_BENCH_PROFILE")  # a cProfile output path
    command = [
        sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []),
        "-m", "uvicorn", "app.asgi:create_default_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--ws", "websockets-sansio",
        "--ws-per-message-deflate", str(deflate).lower(),
        "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError("the server exited")
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.3)
        yield base
    finally:
        process.send_signal(signal.SIGINT)  # as Ctrl-C: a profiled server writes its profile
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


class Client:
    def __init__(self, base: str, tokens_path: str, concurrency: int) -> None:
        url = base.replace("http://", "ws://") + "/graphql"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--client", url, "--tokens", tokens_path,
             "--connect-concurrency", str(concurrency)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the client process exited")
        message: dict[str, Any] = json.loads(line)
        return message

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("quit")
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def rounds(
    url: str, users: list[int], client: Client, namespace: str, count: int
) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    from app.settings import Settings
    from app.streams.broker import AlertBroker
    from db import tables
    from db.engine import create_engine

    engine = create_engine(url)
    broker = AlertBroker(Settings(REDIS_URL=REDIS_URL, PROPINTEL_CACHE_NAMESPACE=namespace))
    results = []
    number = -1
    try:
        while number < count:
            number += 1
            client.send(f"round {number}")
            assert client.read() == {"armed": number}
            now = datetime.now(UTC)
            inserted = time.monotonic()
            async with engine.begin() as conn:
                await conn.execute(
                    sa.insert(tables.alerts),
                    [
                        {"user_id": user, "kind": "SALE_MATCHED", "created_at": now,
                         "dedupe_key": f"B:{number}:{user}:{uuid.uuid4().hex[:6]}"}
                        for user in users
                    ],
                )  # fmt: skip
            published = time.monotonic()
            await broker.publish(users)
            outcome = client.read()
            stamps = outcome["stamps"]
            latencies = [stamp - published for stamp in stamps if stamp is not None]
            missing = sum(stamp is None for stamp in stamps)
            row = {
                "round": number,
                "insert_s": published - inserted,
                "received": len(latencies),
                "missing": missing,
                "latencies": latencies,
                "errors": outcome["errors"],
            }
            results.append(row)
            label = "warm-up" if number == 0 else f"round {number}"
            if number == 0 and missing:
                # A subscription delivers what comes after it started (read its latest id);
                # some had not yet: warm up again until every one is live.
                log(f"warm-up: {missing} subscriptions not live yet, again")
                results.pop()
                number = -1
                await asyncio.sleep(0.5)
                continue
            if latencies:
                log(
                    f"{label}: {len(latencies)}/{len(users)} received, p50 "
                    f"{statistics.median(latencies) * 1000:.0f} ms, p99 "
                    f"{percentile(latencies, 0.99) * 1000:.0f} ms, max "
                    f"{max(latencies) * 1000:.0f} ms (insert {row['insert_s'] * 1000:.0f} ms)"
                    + (f", errors {outcome['errors']}" if outcome["errors"] else "")
                )
            else:
                log(f"{label}: nothing received ({outcome['errors']})")
            await asyncio.sleep(0.5)
    finally:
        await broker.close()
        await engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--port", type=int, default=8111)
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument(
        "--no-deflate",
        action="store_true",
        help="serve without permessage-deflate (uvicorn --ws-per-message-deflate false)",
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_open_files(args.subscribers * 2 + 1024)
    if args.client:
        tokens = json.loads(Path(args.tokens).read_text())
        asyncio.run(client(args.client, tokens, args.connect_concurrency))
        return

    from app.auth.principal import Role
    from app.auth.tokens import AccessTokens

    secret = secrets.token_hex(32)
    namespace = f"bsub{secrets.token_hex(6)}"
    with database(args.backend) as url, tempfile.TemporaryDirectory() as scratch:
        started = time.monotonic()
        users = asyncio.run(create_users(url, args.subscribers))
        tokens = AccessTokens(secret, 3600)
        tokens_path = Path(scratch) / "tokens.json"
        tokens_path.write_text(json.dumps([tokens.issue(u, Role.USER).token for u in users]))
        log(f"{len(users)} users and tokens in {time.monotonic() - started:.1f} s ({args.backend})")
        env = {
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "JWT_SECRET": secret,
            "ADMIN_API_KEY": secrets.token_hex(24),
            "PROPINTEL_PROFILE": "prod",
            "PROPINTEL_CACHE_NAMESPACE": namespace,
            "PROPINTEL_WORKER": "false",
            "PROPINTEL_RATE_LIMIT_ENABLED": "false",
            "PROPINTEL_TRAIN_ON_START": "false",
            "PROPINTEL_CACHE_WARM": "0",
        }
        with server(env, args.port, deflate=not args.no_deflate) as base:
            client_process = Client(base, str(tokens_path), args.connect_concurrency)
            try:
                ready = client_process.read()
                log(f"{ready['ready']} subscribers connected in {ready['seconds']:.1f} s")
                results = asyncio.run(rounds(url, users, client_process, namespace, args.rounds))
            finally:
                client_process.close()
    measured = [row for row in results if row["round"] > 0]
    latencies = [latency for row in measured for latency in row["latencies"]]
    missing = sum(row["missing"] for row in measured)
    summary = {
        "subscribers": args.subscribers,
        "backend": args.backend,
        "rounds": args.rounds,
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "missing": missing,
        "deflate": not args.no_deflate,
    }
    print(json.dumps(summary), flush=True)
    log(
        f"{args.subscribers} subscribers x {args.rounds} rounds ({args.backend} + Redis, one "
        f"server process, permessage-deflate {'on' if summary['deflate'] else 'off'}): p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, max "
        f"{summary['max_ms']} ms, {missing} missing"
    )


if __name__ == "__main__":
    main()

"""Webhook delivery throughput: one worker process to a local receiver.

    .venv/bin/python bench/webhook_delivery.py                 # 5,000 deliveries, 64 slots
    .venv/bin/python bench/webhook_delivery.py -n 20000 --concurrency 128 --endpoints 32

Makes a PostgreSQL database of its own (`propintel_bench_webhooks`, migrated, dropped at the
end), `--endpoints` users each with one endpoint, and N alerts spread over them whose
deliveries and `webhook.deliver` jobs are made by `create_deliveries` (as matching makes
them). The receiver runs in a separate process (uvicorn + httptools, a raw ASGI app that
verifies every request with `standardwebhooks` and answers 204). This process is the worker
(`app.jobs.worker.Worker` with the webhook kinds, `--concurrency` slots, the per-endpoint cap
of the settings): the timer runs from its start until every delivery is SUCCEEDED.
Prints deliveries/s (target: at least 200/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
import sqlalchemy as sa

from app.jobs.registry import JobRegistry
from app.jobs.worker import Worker
from app.settings import Settings
from app.webhooks.signing import new_secret
from app.webhooks.tasks import register
from db import tables
from db.engine import Database, create_engine
from db.migrate import upgrade
from db.repositories.webhooks import create_deliveries

ADMIN_URL = os.environ.get(
    "PROPINTEL_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE = "propintel_bench_webhooks"


# -- the receiver (its own process) ---------------------------------------------------------


def _receiver(port: int, secrets_file: str) -> None:
    """The receiver's process: verifies and counts every request; GET /stats answers the
    counts as JSON."""
    import json

    import uvicorn
    from standardwebhooks import Webhook

    secrets = json.loads(Path(secrets_file).read_text())
    Path(secrets_file).unlink()
    verifiers = {path: Webhook(secret) for path, secret in secrets.items()}
    counts = {"verified": 0, "refused": 0}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            body = json.dumps(counts).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        try:
            verifiers[scope["path"]].verify(body, headers)
            counts["verified"] += 1
        except Exception:
            counts["refused"] += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
        lifespan="off",
    )


def _start_receiver(port: int, secrets: dict[str, str]) -> subprocess.Popen[bytes]:
    """This file again, as the receiver's process (a quick start: nothing to wait for)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(secrets, file)  # the receiver reads it at start, then deletes it
    return subprocess.Popen([sys.executable, __file__, "--receiver", str(port), file.name])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_for_port(port: int, within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the receiver did not start")


# -- the database ---------------------------------------------------------------------------


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _database_url() -> str:
    return ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + (
        f"/{DATABASE}"
    )


async def _seed(db: Database, n: int, endpoints: int, port: int) -> dict[str, str]:
    """Users, one endpoint each, n alerts round-robin, their deliveries and jobs."""
    now = datetime.now(UTC)
    secrets: dict[str, str] = {}
    async with db.begin() as conn:
        user_ids = [
            row[0]
            for row in await conn.execute(
                sa.insert(tables.users)
                .values(
                    [
                        {"email": f"bench-{i}@example.com", "password_hash": "x", "role": "USER"}
                        for i in range(endpoints)
                    ]
                )
                .returning(tables.users.c.id)
            )
        ]
        for i, user_id in enumerate(user_ids):
            secret = new_secret()
            secrets[f"/hook/{i}"] = secret
            await conn.execute(
                sa.insert(tables.webhook_endpoints).values(
                    user_id=user_id,
                    url=f"http://127.0.0.1:{port}/hook/{i}",
                    events="SALE_MATCHED,PROPERTY_SOLD,ESTIMATE_CHANGED,DIGEST",
                    secret=secret,
                    status="ACTIVE",
                    created_at=now,
                    updated_at=now,
                )
            )
        alert_ids = [
            row[0]
            for row in await conn.execute(
                sa.insert(tables.alerts)
                .values(
                    [
                        {
                            "user_id": user_ids[i % endpoints],
                            "kind": "ESTIMATE_CHANGED",
                            "created_at": now,
                            "data": '{"previous": 1000000, "current": 1080000, "changePct": 8.0}',
                            "dedupe_key": f"bench:{i}",
                        }
                        for i in range(n)
                    ]
                )
                .returning(tables.alerts.c.id)
            )
        ]
        made = await create_deliveries(conn, alert_ids)
    assert made == n, made
    return secrets


async def _succeeded(db: Database) -> int:
    async with db.connect() as conn:
        d = tables.webhook_deliveries
        return int(
            await conn.scalar(
                sa.select(sa.func.count()).select_from(d).where(d.c.status == "SUCCEEDED")
            )
            or 0
        )


async def run(n: int, concurrency: int, endpoints: int) -> float:
    await _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await _admin(f'CREATE DATABASE "{DATABASE}"')
    url = _database_url()
    await asyncio.to_thread(upgrade, url)
    settings = Settings(DATABASE_URL=url, PROPINTEL_WORKER_CONCURRENCY=concurrency)
    # Two pools (SQLAlchemy's for writes, up to 2x this; asyncpg's for reads): well under
    # the server's 100 connections, which other clients share.
    pool_size = 16
    db = Database(create_engine(url, pool_size=pool_size), pool_size=pool_size)
    port = _free_port()
    receiver: subprocess.Popen[bytes] | None = None
    try:
        secrets = await _seed(db, n, endpoints, port)
        receiver = _start_receiver(port, secrets)
        await _wait_for_port(port)
        registry = JobRegistry()
        register(registry, db=db, settings=settings)
        worker = Worker(
            db,
            registry,
            settings,
            concurrency=concurrency,
            only_registered=True,
            run_periodic=False,
        )
        started = time.perf_counter()
        await worker.start()
        done = 0
        while done < n:
            await asyncio.sleep(0.1)
            done = await _succeeded(db)
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {done} of {n} delivered in 10 minutes")
        elapsed = time.perf_counter() - started
        await worker.stop()
        rate = n / elapsed
        async with httpx.AsyncClient() as client:
            stats = (await client.get(f"http://127.0.0.1:{port}/stats")).json()
        verified, refused = stats["verified"], stats["refused"]
        print(
            f"webhook delivery: {n:,} deliveries in {elapsed:.2f} s = {rate:,.0f}/s "
            f"(one worker process, {concurrency} slots, {endpoints} endpoints x "
            f"{settings.webhook_endpoint_concurrency} per endpoint); receiver verified "
            f"{verified:,}, refused {refused:,}"
        )
        if refused or verified < n:
            raise RuntimeError(f"the receiver verified {verified} and refused {refused}")
        return rate
    finally:
        if receiver is not None:
            receiver.terminate()
            receiver.wait(5)
        await db.dispose()
        await _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="deliveries (default 5000)")
    parser.add_argument("--concurrency", type=int, default=64, help="worker slots (64)")
    parser.add_argument("--endpoints", type=int, default=16, help="endpoints (16)")
    parser.add_argument("--receiver", nargs=2, metavar=("PORT", "SECRETS"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.receiver:
        _receiver(int(arguments.receiver[0]), arguments.receiver[1])
        return
    rate = asyncio.run(run(arguments.n, arguments.concurrency, arguments.endpoints))
    if rate < 200:
        print("below the target of 200 deliveries/s", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

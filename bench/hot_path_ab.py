"""In-process A/B of the hot path: 7 rounds of 2,000 Q1 requests answered by the
whole-operation cache, through the whole app (gate, front door, cache hit) on the prod
profile, over httpx's ASGI transport (no sockets: less noise than wrk for a few µs).

Run it from two checkouts against the same database and compare the medians:

    PYTHONPATH=. .venv/bin/python bench/hot_path_ab.py head
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

os.environ.update(
    {
        "PROPINTEL_PROFILE": "prod",
        "JWT_SECRET": "k3y-" + "a1b2c3d4e5f6g7h8i9j0" * 2,
        "ADMIN_API_KEY": "zq8wx7ev6rc5tb4yn3",
        "DATABASE_URL": os.environ.get(
            "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/propintel_full"
        ),
        "PROPINTEL_RATE_LIMIT_ENABLED": "false",
        "PROPINTEL_CACHE_WARM": "0",
        "PROPINTEL_TRAIN_ON_START": "false",
    }
)

import httpx  # imported after the environment above: settings read it
from asgi_lifespan import LifespanManager

from app.asgi import create_app

Q1 = """query($id: ID!) { property(id: $id) { id address lastSalePrice lastSaleDate
  sales(first: 10) { edges { node { contractDate price dealingNumber } } } } }"""
ROUNDS, REQUESTS = 7, 2000


async def main(label: str) -> None:
    app = create_app()
    body = {"query": Q1, "variables": {"id": "UHJvcGVydHk6MTAw"}}
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            first = await client.post("/graphql", json=body)
            assert first.status_code == 200, first.text
            rounds = []
            for _ in range(ROUNDS):
                started = time.perf_counter()
                for _ in range(REQUESTS):
                    answer = await client.post("/graphql", json=body)
                rounds.append((time.perf_counter() - started) / REQUESTS * 1e6)
            assert answer.headers.get("x-cache") == "hit"
    print(
        f"{label}: median {statistics.median(rounds):.1f} µs per request "
        f"(rounds {[round(r) for r in rounds]})"
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "run"))

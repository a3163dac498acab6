"""Instructions per request of the server itself (callgrind), this tree against a base
commit, on the bench path: the cost of metrics, logs and tracing-off told apart from noise
(issue 15).

    PYTHONPATH=. .venv/bin/python bench/observability_instructions.py [--base 5dea7e0] [-n 400]

Each server is `propintel serve` as bench/run starts it (one process, prod profile, the
environment of bench/run.py's `ours_env`, the whole-operation cache on: L1 and Redis), run
under `valgrind --tool=callgrind` with instrumentation off until the timed loop. A client in
this process (not under valgrind) sends the bench's Q1 over one keep-alive connection: a
warm-up, then `callgrind_control -i on`, `-n` requests, `-i off`. What is counted is the
server's own user-space work per request: uvicorn's HTTP parsing and writes, the app, the
event loop; wrk's ±15% swings on this 2-core machine do not enter it, and the count repeats
to well under 1% whatever else the machine does.

Measured at two log levels, each on both servers:
- `info` (serve's default, how prod runs): the base wrote uvicorn's access line per
  request; the head writes its own JSON access line (and no uvicorn one).
- `warning` (how bench/run starts both): no access line on either side.
The head runs with Prometheus multiprocess metrics (as `serve` sets them up) and tracing off.
`head_over_base` is the ratio of instructions per request: 1.0 means free.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.observability_cost import Q1, worktree
from bench.run import PG_BASE, REDIS_URL, ROOT, ours_env, psql

WARM_UP = 150
PORTS = {("head", "info"): 8321, ("base", "info"): 8322}
PORTS |= {("head", "warning"): 8323, ("base", "warning"): 8324}


def _request(path: str, payload: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


class Client:
    """One keep-alive HTTP/1.1 connection, reading each response to its end."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.pending = b""

    def send(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.pending:
            self._more()
        head, _, rest = self.pending.partition(b"\r\n\r\n")
        found = re.search(rb"(?i)content-length: *(\d+)", head)
        if found is None:
            raise RuntimeError(f"no content-length in {head!r}")
        length = int(found[1])
        while len(rest) < length:
            rest += self._recv()
        self.pending = rest[length:]
        return head + b"\r\n\r\n" + rest[:length]

    def _more(self) -> None:
        self.pending += self._recv()

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        return chunk


def _wait_ready(port: int, process: subprocess.Popen[str], seconds: float = 1800) -> None:
    probe = _request("/graphql", json.dumps({"query": "{ __typename }"}).encode())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server on {port} exited:\n{process.communicate()[1]}")
        try:
            if b" 200 " in Client(port).send(probe).split(b"\r\n", 1)[0]:
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"server on {port} did not answer in {seconds} s")


def measure(
    tree: Path, mode: str, level: str, count: int, request: bytes, database_url: str | None
) -> int:
    port = PORTS[(mode, level)]
    env = {
        **os.environ,
        **ours_env(cached=True, namespace=f"obsi{os.getpid()}{mode}{level}"),
        **({"DATABASE_URL": database_url} if database_url else {}),
        "PYTHONPATH": str(tree),
        "PROPINTEL_WORKER": "false",  # no job polling counted inside the loop
        "REDIS_URL": REDIS_URL,
        "PYTHONUNBUFFERED": "1",  # as container images run it: both servers alike
    }
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "app.cli",
        "serve",
        "--port",
        str(port),
        "--log-level",
        level,
    ]
    process = subprocess.Popen(
        command,
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,  # the access lines: written, then discarded by the OS
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_ready(port, process)
        client = Client(port)
        for _ in range(WARM_UP):
            answer = client.send(request)
        if b"x-cache: hit" not in answer.lower():
            raise SystemExit(f"{mode}/{level}: Q1 is not a cache hit:\n{answer[:600]!r}")
        _callgrind(process.pid, "on")
        for _ in range(count):
            client.send(request)
        _callgrind(process.pid, "off")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=300)
    found = re.search(r"Collected : (\d+)", stderr)
    if found is None:
        raise SystemExit(f"{mode}/{level}: no callgrind total:\n{stderr[-3000:]}")
    return int(found[1]) // count


def _callgrind(pid: int, state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(pid)], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="5dea7e0")
    parser.add_argument("-n", type=int, default=400)
    parser.add_argument("--levels", default="info,warning")
    parser.add_argument(
        "--database",
        help="serve this database (default: bench/run's propintel_full); the base serves a "
        "copy of it, `<name>_base`, made when missing: a base commit cannot start on a "
        "database migrated past its own migrations (it must hold a property with 10+ sales, "
        "as the full data does)",
    )
    args = parser.parse_args()
    urls: dict[str, str | None] = {"head": None, "base": None}
    if args.database:
        base_name = f"{args.database}_base"
        if psql(f"SELECT 1 FROM pg_database WHERE datname = '{base_name}'", "postgres") != "1":
            psql(f'CREATE DATABASE "{base_name}" TEMPLATE "{args.database}"', "postgres")
        urls = {"head": f"{PG_BASE}/{args.database}", "base": f"{PG_BASE}/{base_name}"}
    # The bench's Q1 (bench/observability_cost.py): a property with 10+ sales.
    property_id = psql(
        "SELECT property_id FROM sales GROUP BY property_id HAVING count(*) >= 10 "
        "ORDER BY property_id LIMIT 1",
        *([args.database] if args.database else []),
    )
    global_id = base64.urlsafe_b64encode(f"Property:{property_id}".encode()).decode()
    request = _request(
        "/graphql", json.dumps({"query": Q1, "variables": {"id": global_id}}).encode()
    )
    trees = {"head": ROOT, "base": worktree(args.base)}
    runs = [(mode, level) for level in args.levels.split(",") for mode in trees]
    with ThreadPoolExecutor(2) as pool:  # two at a time: the machine has two cores
        counts = list(
            pool.map(
                lambda run: measure(trees[run[0]], run[0], run[1], args.n, request, urls[run[0]]),
                runs,
            )
        )
    per_request = {
        f"{mode}_{level}": count for (mode, level), count in zip(runs, counts, strict=True)
    }
    report = {
        "instructions_per_request": per_request,
        **{
            f"head_over_base_{level}": round(
                per_request[f"head_{level}"] / per_request[f"base_{level}"], 4
            )
            for level in args.levels.split(",")
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

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

Four servers at each of two log levels:
- `head`: this tree as serve runs it (Prometheus multiprocess metrics, tracing off), with
  the metrics' flush timer deferred past the counted loop (bench/observability_off.py);
- `head_timer`: the same with the 0.25 s flush timer as shipped. Under valgrind a request
  takes ~50x as long, so the timer fires ~50x as often per request as at full speed; the
  difference between the two, times the ratio of this client's wall time per request at
  full speed (a native head server, measured first) to that under valgrind, is the flush's
  share per request at full speed (`flush_at_speed`);
- `off`: this tree with every metric update a no-op and the HTTP edge reduced to its
  security headers (no record, request id, request metrics or access line): what the same
  request costs without observability;
- `base`: the commit before issue 15 (`--base`), which had none of it.
`observability_cost` = (head + flush_at_speed) / off: the issue's figure, as nothing but
observability differs. `head_over_base` also counts every other change since the base (the
router bypass of issue 16 made the head cheaper; the cache's invalidation counter dearer).
Levels: `warning` (how bench/run starts the servers: no access line) and `info` (serve's
default, how prod runs: the base wrote uvicorn's access line per request, the head its own
JSON line; `off` writes none, so at `info` the cost includes the access line itself).
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
MODES = ("head", "head_timer", "off", "base")
PORTS = {
    (mode, level): 8321 + 4 * index + offset
    for offset, mode in enumerate(MODES)
    for index, level in enumerate(("info", "warning"))
}
NATIVE_PORT = 8320
LAUNCH = {  # mode -> (module, environment): the launcher takes parts out (or defers a timer)
    "head": ("bench.observability_off", {"PROPINTEL_BENCH_FLUSH_S": "1000000"}),
    "head_timer": ("app.cli", {}),
    "off": ("bench.observability_off", {"PROPINTEL_BENCH_WITHOUT": "metrics,edge"}),
    "base": ("app.cli", {}),
}


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


def _environment(tree: Path, mode: str, level: str, database_url: str | None) -> dict[str, str]:
    return {
        **os.environ,
        **ours_env(cached=True, namespace=f"obsi{os.getpid()}{mode}{level}"),
        **({"DATABASE_URL": database_url} if database_url else {}),
        "PYTHONPATH": str(tree),
        "PROPINTEL_WORKER": "false",  # no job polling counted inside the loop
        "REDIS_URL": REDIS_URL,
        "PYTHONUNBUFFERED": "1",  # as container images run it: both servers alike
        **LAUNCH[mode][1],
    }


def _serve(mode: str, port: int, level: str) -> list[str]:
    # -P: `-m` would put the working directory ahead of PYTHONPATH (the base's tree).
    module = LAUNCH[mode][0]
    return [sys.executable, "-P", "-m", module, "serve", "--port", str(port), "--log-level", level]


def native_seconds_per_request(request: bytes, database_url: str | None, count: int) -> float:
    """This client's wall time per request against the head at full speed (no valgrind)."""
    env = _environment(ROOT, "head_timer", "warning", database_url)
    process = subprocess.Popen(
        _serve("head_timer", NATIVE_PORT, "warning"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_ready(NATIVE_PORT, process)
        client = Client(NATIVE_PORT)
        for _ in range(WARM_UP * 10):
            client.send(request)
        started = time.perf_counter()
        for _ in range(count):
            client.send(request)
        return (time.perf_counter() - started) / count
    finally:
        process.terminate()
        process.wait(timeout=60)


def measure(
    tree: Path, mode: str, level: str, count: int, request: bytes, database_url: str | None
) -> tuple[int, float]:
    """(instructions per request, wall seconds per request) of the counted loop."""
    port = PORTS[(mode, level)]
    env = _environment(tree, mode, level, database_url)
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--callgrind-out-file=/dev/null",
        *_serve(mode, port, level),
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
        started = time.perf_counter()
        for _ in range(count):
            client.send(request)
        wall = (time.perf_counter() - started) / count
        _callgrind(process.pid, "off")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=300)
    found = re.search(r"Collected : (\d+)", stderr)
    if found is None:
        raise SystemExit(f"{mode}/{level}: no callgrind total:\n{stderr[-3000:]}")
    return int(found[1]) // count, wall


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
    head_url: str | None = None
    base_url: str | None = None
    if args.database:
        base_name = f"{args.database}_base"
        if psql(f"SELECT 1 FROM pg_database WHERE datname = '{base_name}'", "postgres") != "1":
            psql(f'CREATE DATABASE "{base_name}" TEMPLATE "{args.database}"', "postgres")
        head_url, base_url = f"{PG_BASE}/{args.database}", f"{PG_BASE}/{base_name}"
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
    native = native_seconds_per_request(request, head_url, 5000)
    base_tree = worktree(args.base)
    levels = args.levels.split(",")
    runs = [(mode, level) for level in levels for mode in MODES]

    def one(run: tuple[str, str]) -> tuple[int, float]:
        mode, level = run
        tree, url = (base_tree, base_url) if mode == "base" else (ROOT, head_url)
        return measure(tree, mode, level, args.n, request, url)

    with ThreadPoolExecutor(2) as pool:  # two at a time: the machine has two cores
        measured = dict(zip(runs, pool.map(one, runs), strict=True))
    report: dict[str, object] = {"native_seconds_per_request": round(native, 7)}
    for level in levels:
        count = {mode: measured[(mode, level)][0] for mode in MODES}
        timer_wall = measured[("head_timer", level)][1]
        # The timer's share scales with wall time per request: at full speed it fires
        # timer_wall / native times less often per request than under valgrind.
        flush = max(0, count["head_timer"] - count["head"]) * native / timer_wall
        report[level] = {
            "instructions_per_request": count,
            "valgrind_seconds_per_request": round(timer_wall, 5),
            "flush_at_speed": round(flush),
            "observability_cost": round((count["head"] + flush) / count["off"], 4),
            "head_over_base": round((count["head"] + flush) / count["base"], 4),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

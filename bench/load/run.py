"""Step load against propintel and a capacity report (issue 18).

    bench/load/run                       # the full run: ~15 minutes on the full data
    bench/load/run --quick               # a smoke run: two short steps of a few users each
    .venv/bin/python -m bench.load.run --database-url postgresql://postgres@127.0.0.1/db

For each configuration (one process / `--workers 2`, each with the cache off and on) it starts
`propintel serve` as bench/run.py does (prod profile, rate limits off, no training at start;
cache on = L1 + Redis in a namespace of its own), then runs Locust headless
(bench/load/locustfile.py) at a rising number of users, one Locust process per step, its
statistics reset once every user has started. It stops a configuration at the first step
whose p95 misses the objective (250 ms: docker/prometheus/rules' query-latency alert) or whose
failures pass `--max-error-ratio`. Through each step it samples the CPU of the server's
processes, of the PostgreSQL backends serving the load database, of Locust and of the whole
machine (psutil). It writes `bench/load/results/<UTC time>/report.md`, PNG plots and the raw
step figures (`steps.json`).

The database: writes (the admin trickle, the users the run registers) must not reach
`propintel_full`, which other benches compare with the source files, so by default the run
uses `propintel_load`, made once as a copy of it (`CREATE DATABASE ... TEMPLATE`, which needs
no other session on `propintel_full`: retried for `--template-wait` seconds, then a smaller
database of 2023-2024 is loaded instead and the report says so). Without an active price
model the run trains a fast one there (estimates are part of the mix).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil  # type: ignore[import-untyped]  # no types-psutil in the lock

from bench.load import report, sample
from bench.load.report import Step

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "load" / "results"
LOCUSTFILE = ROOT / "bench" / "load" / "locustfile.py"
PG_BASE = os.environ.get("PROPINTEL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("PROPINTEL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SOURCE_DATABASE = "propintel_full"
LOAD_DATABASE = "propintel_load"
OBJECTIVE_P95_MS = 250.0  # docker/prometheus/rules/propintel.yml: PropintelQueryLatencyHigh


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Configuration:
    workers: int
    cached: bool

    @property
    def name(self) -> str:
        processes = "1 process" if self.workers == 1 else f"{self.workers} workers"
        return f"{processes}, cache {'on' if self.cached else 'off'}"

    @property
    def slug(self) -> str:
        return f"w{self.workers}-{'on' if self.cached else 'off'}"


CONFIGURATIONS = {
    c.slug: c for c in (Configuration(w, cached) for w in (1, 2) for cached in (False, True))
}


# --- the database ------------------------------------------------------------------------------


async def _fetchval(dsn: str, sql: str) -> Any:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


def fetchval(dsn: str, sql: str) -> Any:
    return asyncio.run(_fetchval(dsn, sql))


def ensure_load_database(template_wait: float) -> tuple[str, str]:
    """The default database (a copy of propintel_full) and a note for the report."""
    admin = f"{PG_BASE}/postgres"
    url = f"{PG_BASE}/{LOAD_DATABASE}"
    if fetchval(admin, f"SELECT count(*) FROM pg_database WHERE datname = '{LOAD_DATABASE}'"):
        return url, f"`{LOAD_DATABASE}` (a copy of `{SOURCE_DATABASE}` made by an earlier run)"
    deadline = time.monotonic() + template_wait
    while True:
        log(f"copying {SOURCE_DATABASE} into {LOAD_DATABASE} (CREATE DATABASE ... TEMPLATE)")
        try:
            # FILE_COPY: a few checkpoints instead of the whole database through the WAL.
            fetchval(
                admin,
                f'CREATE DATABASE "{LOAD_DATABASE}" TEMPLATE "{SOURCE_DATABASE}" '
                "STRATEGY FILE_COPY",
            )
            return url, f"`{LOAD_DATABASE}`, a copy of `{SOURCE_DATABASE}` made by this run"
        except asyncpg.ObjectInUseError as error:
            if time.monotonic() > deadline:
                log(f"gave up copying: {error}")
                break
            log(f"{SOURCE_DATABASE} is in use ({error}); retrying in 15 s")
            time.sleep(15)
    log(f"loading 2023-2024 into {LOAD_DATABASE} instead (propintel load-data)")
    fetchval(admin, f'CREATE DATABASE "{LOAD_DATABASE}"')
    env = {**os.environ, "DATABASE_URL": url}
    propintel = str(ROOT / ".venv" / "bin" / "propintel")
    subprocess.run([propintel, "migrate"], env=env, check=True)
    subprocess.run([propintel, "load-data", "--years", "2023-2024", "--quiet"], env=env, check=True)
    return url, (
        f"`{LOAD_DATABASE}` loaded with 2023-2024 only: `{SOURCE_DATABASE}` could not be "
        "copied (other sessions were connected to it)"
    )


def ensure_model(url: str) -> str:
    """An active price model: estimates are part of the mix, and without one they fail."""
    if fetchval(url, "SELECT count(*) FROM price_models WHERE active"):
        return "the database's active price model"
    from app.estimates.tasks import store, train_artifact
    from app.settings import Settings
    from db.engine import Database, create_engine

    log("no active price model: training a fast one (60 boosting rounds)")
    database_url = Settings(DATABASE_URL=url).database_url
    trained = train_artifact(database_url, {"max_iter": 60})

    async def register() -> None:
        db = Database(create_engine(database_url))
        try:
            await store(db, trained, activate=True)
        finally:
            await db.dispose()

    asyncio.run(register())
    return f"a fast price model trained by this run ({trained.training_seconds:.0f} s)"


# --- the server ----------------------------------------------------------------------------------


def server_env(url: str, configuration: Configuration, secrets_: dict[str, str]) -> dict[str, str]:
    """bench/run.py's `ours_env` for another database: prod profile, its secrets, rate limits
    off (one client address sends everything), no training; tokens outlive the run."""
    env = {
        "DATABASE_URL": url,
        "PROPINTEL_PROFILE": "prod",
        "PROPINTEL_CACHE_ENABLED": "true" if configuration.cached else "false",
        "PROPINTEL_INITIAL_LOAD": "none",
        "PROPINTEL_DB_POOL_SIZE": "16",
        "JWT_SECRET": secrets_["jwt"],
        "ADMIN_API_KEY": secrets_["admin_key"],
        "PROPINTEL_RATE_LIMIT_ENABLED": "false",
        "PROPINTEL_TRAIN_ON_START": "false",
        "PROPINTEL_ACCESS_TTL_S": "86400",
        "PROPINTEL_LOG_LEVEL": "warning",
    }
    if configuration.cached:
        env |= {
            "REDIS_URL": REDIS_URL,
            "PROPINTEL_CACHE_NAMESPACE": f"load{os.getpid()}{configuration.slug}",
            "PROPINTEL_CACHE_WARM": "0",  # the cache fills under the load itself
        }
    return env


@contextmanager
def running_server(
    env: dict[str, str], workers: int, port: int, log_path: Path
) -> Iterator[psutil.Process]:
    with socket.socket() as probe:  # a server left over would answer in our place
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is in use: stop what listens there or pass --port")
    command = [str(ROOT / ".venv" / "bin" / "propintel"), "serve", "--port", str(port)]
    command += ["--workers", str(workers), "--log-level", "warning"]
    with log_path.open("w") as output:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"propintel serve exited at start; its log: {log_path}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"propintel serve was not ready in 120 s; its log: {log_path}")
            time.sleep(0.5)
        yield psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- CPU ---------------------------------------------------------------------------------------


class CpuSampler:
    """CPU seconds per group of processes over a window, as % of one core: the server's
    process tree, the PostgreSQL backends connected to the load database, Locust's process
    and the whole machine (the rest: the shared machine's other work)."""

    def __init__(self, server: psutil.Process, dsn: str, database: str) -> None:
        self.server = server
        self.dsn = dsn
        self.database = database
        self.locust: psutil.Process | None = None
        self._seen: dict[tuple[str, int], float] = {}
        self._totals: dict[str, float] = {}
        self._backends: list[int] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _group(self, name: str, processes: list[psutil.Process]) -> None:
        for process in processes:
            try:
                times = process.cpu_times()
                used = times.user + times.system
            except psutil.Error:
                continue
            key = (name, process.pid)
            previous = self._seen.get(key)
            self._seen[key] = used
            if previous is not None:  # a process seen for the first time counts from now
                self._totals[name] = self._totals.get(name, 0.0) + max(0.0, used - previous)

    def _tree(self, root: psutil.Process | None) -> list[psutil.Process]:
        if root is None:
            return []
        try:
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def _refresh_backends(self) -> None:
        sql = (
            "SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity "
            f"WHERE datname = '{self.database}' AND pid <> pg_backend_pid()"
        )
        try:
            found = str(fetchval(self.dsn, sql))
        except (OSError, asyncpg.PostgresError):
            return
        self._backends = [int(pid) for pid in found.split(",") if pid]

    def _tick(self, refresh: bool) -> None:
        if refresh:
            self._refresh_backends()
        backends = []
        for pid in self._backends:
            with suppress(psutil.Error):  # gone since the list was read
                backends.append(psutil.Process(pid))
        machine = psutil.cpu_times()
        with self._lock:
            self._group("server", self._tree(self.server))
            self._group("postgresql", backends)
            self._group("locust", self._tree(self.locust))
            busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
            previous = self._seen.get(("machine", 0))
            self._seen[("machine", 0)] = busy
            if previous is not None:
                self._totals["machine"] = self._totals.get("machine", 0.0) + busy - previous

    def _loop(self) -> None:
        ticks = 0
        while not self._stop.is_set():
            self._tick(refresh=ticks % 5 == 0)
            ticks += 1
            self._stop.wait(1.0)

    def mark(self) -> tuple[float, dict[str, float]]:
        with self._lock:
            return time.monotonic(), dict(self._totals)

    @staticmethod
    def percent(
        start: tuple[float, dict[str, float]], end: tuple[float, dict[str, float]]
    ) -> dict[str, float]:
        seconds = max(end[0] - start[0], 1e-6)
        shares = {
            name: 100.0 * (end[1].get(name, 0.0) - start[1].get(name, 0.0)) / seconds
            for name in ("server", "postgresql", "locust", "machine")
        }
        shares["other"] = max(
            0.0, shares["machine"] - shares["server"] - shares["postgresql"] - shares["locust"]
        )
        return shares


# --- Locust ------------------------------------------------------------------------------------


def run_step(
    configuration: Configuration,
    users: int,
    seconds: int,
    sample_path: Path,
    out: Path,
    sampler: CpuSampler,
    port: int,
) -> Step:
    prefix = out / "csv" / f"{configuration.slug}-u{users}"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    spawn_rate = users  # everyone started within a second
    ramp = users / spawn_rate
    command = [
        str(ROOT / ".venv" / "bin" / "locust"),
        "-f", str(LOCUSTFILE), "--headless", "--host", f"http://127.0.0.1:{port}",
        "-u", str(users), "-r", str(spawn_rate), "--run-time", f"{seconds + ramp:.0f}s",
        "--reset-stats", "--csv", str(prefix), "--only-summary", "--loglevel", "INFO",
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    env = {**os.environ, "PROPINTEL_LOAD_SAMPLE": str(sample_path), "PYTHONPATH": str(ROOT)}
    with (out / "csv" / f"{configuration.slug}-u{users}.log").open("w") as output:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=output)
        sampler.locust = psutil.Process(process.pid)
        log_file = Path(output.name)
        deadline = time.monotonic() + seconds + ramp + 90
        # Locust resets its statistics once every user has started (--reset-stats); the
        # CPU window starts then too: when its log says so (flushed line by line, unlike the
        # CSV history).
        while "All users spawned" not in log_file.read_text() and process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"Locust did not start its users; see {output.name}")
            time.sleep(0.25)
        start = sampler.mark()
        try:
            code = process.wait(timeout=seconds + ramp + 60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise SystemExit(f"Locust did not finish its step; see {output.name}") from None
        end = sampler.mark()
        sampler.locust = None
    if code != 0 or not Path(f"{prefix}_stats.csv").exists():
        raise SystemExit(f"Locust failed (exit {code}); see {output.name}")
    return read_step(
        configuration, users, prefix, CpuSampler.percent(start, end), end[0] - start[0]
    )


def _number(value: str) -> float:
    return float(value) if value not in ("", "N/A") else 0.0


def read_step(
    configuration: Configuration, users: int, prefix: Path, cpu: dict[str, float], window: float
) -> Step:
    """One step's figures; rates over `window`, the seconds measured once every user ran
    (Locust's own Requests/s is over the time between its first and last request)."""
    with open(f"{prefix}_stats.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    with open(f"{prefix}_failures.csv", newline="") as file:
        failures = [
            {"name": row["Name"], "error": row["Error"], "count": int(row["Occurrences"])}
            for row in csv.DictReader(file)
        ]
    total = next(row for row in rows if row["Name"] == "Aggregated")
    operations = [
        {
            "name": row["Name"],
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "p50_ms": _number(row["50%"]),
            "p95_ms": _number(row["95%"]),
            "p99_ms": _number(row["99%"]),
            "rps": int(row["Request Count"]) / window,
        }
        for row in rows
        if row["Name"] != "Aggregated"
    ]
    requests = int(total["Request Count"])
    rps = requests / window
    return Step(
        configuration=configuration.name,
        users=users,
        seconds=window,
        requests=requests,
        failures=int(total["Failure Count"]),
        rps=rps,
        p50_ms=_number(total["50%"]),
        p95_ms=_number(total["95%"]),
        p99_ms=_number(total["99%"]),
        cpu=cpu,
        operations=operations,
        errors=failures,
    )


# --- the run -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 short steps of 2 and 4 users"
    )
    parser.add_argument(
        "--database-url", help=f"default: {LOAD_DATABASE} (a copy of {SOURCE_DATABASE})"
    )
    parser.add_argument("--configurations", default=",".join(CONFIGURATIONS),
                        help=f"comma-separated, of {', '.join(CONFIGURATIONS)}")  # fmt: skip
    parser.add_argument("--users", help="comma-separated steps (default 8,16,32,64,128,256)")
    parser.add_argument("--step-seconds", type=int, help="measured seconds per step (default 20)")
    parser.add_argument("--max-error-ratio", type=float, default=0.001,
                        help="failed requests per request a step may have (default 0.001)")  # fmt: skip
    parser.add_argument("--accounts", type=int, help="signed-in users registered (default 20)")
    parser.add_argument("--no-train", action="store_true",
                        help="no price model is trained when none is active (estimates fail)")  # fmt: skip
    parser.add_argument("--estimates-anyway", action="store_true",
                        help="with --no-train and no model: send estimates (they fail)")  # fmt: skip
    parser.add_argument("--port", type=int, default=8141, help="the server's (default 8141)")
    parser.add_argument("--template-wait", type=float, default=300.0)
    parser.add_argument(
        "--out", type=Path, help="results directory (default bench/load/results/<UTC time>)"
    )
    args = parser.parse_args(argv)

    unknown = set(args.configurations.split(",")) - set(CONFIGURATIONS)
    if unknown:
        parser.error(
            f"unknown configurations {sorted(unknown)}; known: {', '.join(CONFIGURATIONS)}"
        )
    configurations = [CONFIGURATIONS[slug] for slug in args.configurations.split(",")]
    steps_users = [
        int(n) for n in (args.users or ("2,4" if args.quick else "8,16,32,64,128,256")).split(",")
    ]
    step_seconds = args.step_seconds or (4 if args.quick else 20)
    accounts = args.accounts or (3 if args.quick else 20)
    if step_seconds < 1 or any(n < 1 for n in steps_users):
        parser.error("--users and --step-seconds must be positive")

    started = datetime.now(UTC)
    out = args.out or RESULTS / started.strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    if args.database_url:
        url, database_note = args.database_url, "given with `--database-url`"
    else:
        url, database_note = ensure_load_database(args.template_wait)
    database = url.rsplit("/", 1)[1].split("?")[0]
    estimates = True
    if not args.no_train:
        model_note = ensure_model(url)
    elif fetchval(url, "SELECT count(*) FROM price_models WHERE active"):
        model_note = "the database's active price model"
    else:
        estimates = args.estimates_anyway
        model_note = "no active price model and none trained (`--no-train`): " + (
            "estimates sent anyway, they fail" if estimates else "left out of the mix"
        )
    secrets_ = {"jwt": secrets.token_hex(32), "admin_key": secrets.token_hex(24)}
    run_id = started.strftime("%m%d%H%M%S")
    sample_path = out / "sample.json"
    the_sample = sample.database_sample(
        url, properties=2000 if not args.quick else 200, localities=300
    )
    the_sample["run_id"] = run_id
    the_sample["estimates"] = estimates

    steps: list[Step] = []
    for configuration in configurations:
        env = server_env(url, configuration, secrets_)
        log(f"{configuration.name}: starting propintel serve")
        ready = time.monotonic()
        with running_server(
            env, configuration.workers, args.port, out / f"server-{configuration.slug}.log"
        ) as server:
            log(f"ready in {time.monotonic() - ready:.1f} s")
            if "admin_token" not in the_sample:
                the_sample |= sample.accounts(
                    f"http://127.0.0.1:{args.port}", secrets_["admin_key"], run_id, accounts,
                    the_sample["properties"],
                )  # fmt: skip
                sample.write_sample(sample_path, the_sample)
                log(f"registered {accounts} users and the admin")
            with CpuSampler(server, f"{PG_BASE}/postgres", database) as sampler:
                for users in steps_users:
                    step = run_step(
                        configuration, users, step_seconds, sample_path, out, sampler, args.port
                    )
                    steps.append(step)
                    log(
                        f"{configuration.name}, {users} users: {step.rps:.0f} req/s, p95 "
                        f"{step.p95_ms:.0f} ms, {step.failures}/{step.requests} failed, server "
                        f"{step.cpu['server']:.0f}% postgresql {step.cpu['postgresql']:.0f}%"
                    )
                    if not step.passes(OBJECTIVE_P95_MS, args.max_error_ratio):
                        break
    sample_path.unlink()  # access tokens: not kept with the results

    context = report.Context(
        started=started,
        finished=datetime.now(UTC),
        database=database_note,
        model=model_note,
        objective_p95_ms=OBJECTIVE_P95_MS,
        max_error_ratio=args.max_error_ratio,
        step_seconds=step_seconds,
        quick=args.quick,
        cores=psutil.cpu_count() or 1,
        workers={c.name: c.workers for c in configurations},
        load_average=os.getloadavg(),
    )
    (out / "steps.json").write_text(json.dumps([asdict(s) for s in steps], indent=1))
    report.write(out, context, steps)
    log(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

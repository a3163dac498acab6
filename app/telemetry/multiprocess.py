"""prometheus-client's multiprocess mode, for `propintel serve --workers N`.

Each uvicorn worker is a process of its own; prometheus-client then keeps every value in a
memory-mapped file per process (`<type>_<pid>.db`) under PROMETHEUS_MULTIPROC_DIR, and
/metrics (app/http/metrics.py) adds the files of all processes up, so whichever worker
answers a scrape reports the whole server.

prometheus-client picks how values are stored when `prometheus_client.values` is imported
(its `ValueClass`, from the environment at that moment), so the directory must be set
before anything imports prometheus-client: `prepare` is the first thing `cmd_serve` does,
and it refuses to run once prometheus-client is loaded (the values already made would live
in process memory, invisible to the other workers). Modules that `app.cli` imports at
start (the settings, app/resilience, db/) therefore import app.telemetry.metrics lazily.

Dead workers. Counters of a process that ended stay in the sum (totals must not go down),
but its `live*` gauges (connections in use, pool sizes, breaker states) must leave it:
- a worker that stops cleanly marks itself dead in its lifespan shutdown (`mark_dead`);
- a worker that is killed (SIGKILL, the OOM killer) runs no shutdown, and uvicorn starts
  a replacement under a new pid; so every scrape also sweeps the live-gauge files of pids
  that no longer exist (`sweep_dead`). Both are needed: the sweep alone would keep a
  cleanly stopped worker's gauges until the next scrape, and the mark alone never sees
  a killed one.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ENVIRONMENT = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_PREFIX = "gauge_live"
"""Files of live* gauges: `gauge_livesum_1234.db`, `gauge_livemax_1234.db`, ..."""


def default_directory(port: int) -> Path:
    """./var/metrics/<port> (one server per port on a machine), or a temporary directory
    when the working directory cannot hold it."""
    candidate = Path("var") / "metrics" / str(port)
    try:
        candidate.mkdir(parents=True, exist_ok=True)
    except OSError:
        return Path(tempfile.mkdtemp(prefix=f"propintel-metrics-{port}-"))
    return candidate.resolve()


def prepare(default: Path) -> Path:
    """Sets PROMETHEUS_MULTIPROC_DIR (the environment's own, else `default`), creates it and
    empties it of a previous run's files (their pids may be reused, and their counters
    would add to this run's). Processes started after this (uvicorn's workers) inherit it.
    Raises RuntimeError when prometheus-client is already imported in this process."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before the metrics directory was set: "
            "app.telemetry.multiprocess.prepare must run before anything imports "
            "app.telemetry.metrics (look for a module-level import of it in what app.cli "
            "imports)"
        )
    path = Path(os.environ.get(ENVIRONMENT) or default).resolve()
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[ENVIRONMENT] = str(path)
    return path


def single_process() -> None:
    """For processes that serve their own metrics (`propintel worker`): values in process
    memory, not in a directory another server sums (its /metrics would count them twice)."""
    if "prometheus_client" not in sys.modules:
        os.environ.pop(ENVIRONMENT, None)


def directory() -> Path | None:
    """The multiprocess directory when this process stores its values there, else None
    (in-process test apps, `propintel worker`)."""
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        return None
    path = os.environ.get(ENVIRONMENT)
    return Path(path) if path else None


def mark_dead(pid: int) -> None:
    """Drops `pid`'s live* gauges from the sum (its lifespan shutdown)."""
    path = directory()
    if path is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's
        return True
    try:  # a zombie (killed, not yet reaped by uvicorn) is dead for our purpose
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here: kill(0) said it exists
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def sweep_dead() -> list[int]:
    """Marks dead every pid that has live-gauge files but no longer exists; returns them.
    Cheap: it lists the live-gauge files only, and a swept pid has none left."""
    path = directory()
    if path is None:
        return []
    pids: set[int] = set()
    for file in path.glob(f"{_LIVE_PREFIX}*_*.db"):
        found = file.stem.rpartition("_")[2]
        if found.isdigit():
            pids.add(int(found))
    dead = sorted(pid for pid in pids if pid != os.getpid() and not _alive(pid))
    for pid in dead:
        mark_dead(pid)
    return dead

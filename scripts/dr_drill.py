"""The disaster-recovery drill (issue 18): back up a scratch PostgreSQL cluster with
pgBackRest, write marker sales through the API while WAL is archived, lose the cluster,
restore it to the archive's end and to a time between two markers, and check what came
back. `scripts/dr-drill --help`; docs/runbooks.md "Restore to a point in time".

It never touches the cluster it would protect: it runs `initdb` into a temporary directory,
on a port of its own, with a pgBackRest repository of its own in the same directory (a
pgbackrest.conf made from docker/pgbackrest/pgbackrest.conf, archiving settings from
docker/postgres/archiving.conf). Everything it made is removed when it ends, however it ends.

Marker sales are recorded on one property with a contract date older than its history and a
partial interest: they add a `sales` row and a `jobs` row each (the alerts job; no worker
runs) and change nothing else, so every other row must come back exactly as it was before
the markers, and the markers must come back as a prefix of those written (latest point) or
exactly those committed before the target (point in time).
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path(os.environ.get("PROPINTEL_PG_BIN", "/usr/lib/postgresql/15/bin"))
DOCKER_PGBACKREST = ROOT / "docker/pgbackrest/pgbackrest.conf"
DOCKER_ARCHIVING = ROOT / "docker/postgres/archiving.conf"
DATA_DIR = (ROOT / "../shared/data").resolve()
SLICE = "ERSKINEVILLE,ABERDARE,TEMPE,BRANXTON"  # tests/support/databases.py's SLICE
STANZA = "propintel"
DATABASE = "propintel"
MARKER_PREFIX = "DRILL"
RECORD_SALE = """mutation($input: RecordSaleInput!) {
  recordSale(input: $input) { id dealingNumber price } }"""


class DrillError(Exception):
    """A step of the drill failed; the message says which and why."""


def log(message: str) -> None:
    print(f"dr-drill: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def as_postgres(command: Sequence[str | Path]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user then."""
    args = [str(part) for part in command]
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def run(command: Sequence[str | Path], *, what: str, timeout: float = 3600) -> str:
    done = subprocess.run(
        as_postgres(command), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise DrillError(
            f"{what} failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}"
        )
    return done.stdout


@dataclass
class Cluster:
    """The scratch cluster and its pgBackRest repository, all under `root`."""

    root: Path
    port: int
    archive_timeout: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.root / "pgbackrest.conf"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def pgbackrest(self, *args: str, what: str) -> str:
        return run(
            ["pgbackrest", f"--config={self.config}", f"--stanza={STANZA}", *args], what=what
        )

    def psql(self, sql: str, *, database: str = DATABASE) -> str:
        return run(
            [
                PG_BIN / "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-tA",
                "-c",
                sql,
            ],
            what=f"psql {sql[:60]!r}",
        )

    def start(self) -> None:
        run(
            [
                PG_BIN / "pg_ctl",
                "-D",
                self.data,
                "-l",
                self.root / "postgres.log",
                "-w",
                "-t",
                "600",
                "start",
            ],
            what="pg_ctl start",
        )

    def stop(self, mode: str) -> None:
        run(
            [PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"],
            what=f"pg_ctl stop -m {mode}",
        )

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


def write_pgbackrest_conf(cluster: Cluster) -> None:
    """docker's pgbackrest.conf with the scratch cluster's paths and port."""
    config = configparser.ConfigParser(interpolation=None, comment_prefixes=("#",))
    config.optionxform = str  # type: ignore[assignment,method-assign]
    config.read(DOCKER_PGBACKREST)
    config["global"].update(
        {
            "repo1-path": str(cluster.root / "repo"),
            "log-path": str(cluster.root / "log"),
            "lock-path": str(cluster.root / "lock"),
        }
    )
    config[STANZA].update(
        {
            "pg1-path": str(cluster.data),
            "pg1-port": str(cluster.port),
            "pg1-user": "postgres",
            "pg1-socket-path": str(cluster.root),
        }
    )
    with cluster.config.open("w") as out:
        config.write(out)


def archiving_settings(cluster: Cluster) -> str:
    """docker's archiving.conf, archive_command pointed at the scratch repository."""
    lines = []
    for raw in DOCKER_ARCHIVING.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key = line.split("=", 1)[0].strip()
        if key == "archive_command":
            line = (
                f"archive_command = 'pgbackrest --config={cluster.config} "
                f"--stanza={STANZA} archive-push %p'"
            )
        elif key == "archive_timeout":
            line = f"archive_timeout = {cluster.archive_timeout}"
        lines.append(line)
    return "\n".join(lines)


def create_cluster(cluster: Cluster) -> None:
    for sub in ("repo", "log", "lock"):
        (cluster.root / sub).mkdir()
    write_pgbackrest_conf(cluster)
    if os.geteuid() == 0:
        shutil.chown(cluster.root, "postgres", "postgres")
        for path in cluster.root.rglob("*"):
            shutil.chown(path, "postgres", "postgres")
    run(
        [
            PG_BIN / "initdb",
            "-D",
            cluster.data,
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ],
        what="initdb",
    )
    settings = f"""
# scripts/dr-drill: a scratch cluster of its own
port = {cluster.port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '{cluster.root}'
fsync = on
{archiving_settings(cluster)}
"""
    conf = cluster.data / "postgresql.conf"
    with conf.open("a") as out:
        out.write(settings)
    cluster.start()
    cluster.psql(f"CREATE DATABASE {DATABASE}", database="postgres")


# --- what the database holds -------------------------------------------------------------


def table_checksums(cluster: Cluster, bounds: dict[str, int]) -> dict[str, tuple[int, str]]:
    """Row count and md5 of every table's rows in primary-key order (the md5 of the rows'
    md5s: one text of all of `sales` would pass PostgreSQL's 1 GB limit on the full data);
    `bounds` limits a table to the rows whose `id` is at most the bound (the rows before the
    markers)."""
    listing = cluster.psql(
        """SELECT c.relname, coalesce((SELECT string_agg(quote_ident(a.attname), ','
                 ORDER BY array_position(i.indkey::int2[], a.attnum))
             FROM pg_index i JOIN pg_attribute a
               ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
             WHERE i.indrelid = c.oid AND i.indisprimary), '')
           FROM pg_class c
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
             AND NOT c.relispartition ORDER BY 1"""
    )
    result: dict[str, tuple[int, str]] = {}
    for line in listing.splitlines():
        name, pk = line.split("|", 1)
        order = pk or "t::text"
        where = f" WHERE id <= {bounds[name]}" if name in bounds else ""
        row = cluster.psql(
            f"SELECT count(*), coalesce(md5(string_agg(md5(t::text), ',' ORDER BY {order})), '') "
            f'FROM "{name}" t{where}'
        )
        count, digest = row.strip().split("|")
        result[name] = (int(count), digest)
    return result


def marker_rows(cluster: Cluster, after_id: int) -> dict[str, str]:
    """The marker sales present: dealing number -> the whole row as text."""
    out = cluster.psql(
        f"SELECT dealing_number, s::text FROM sales s WHERE id > {after_id} "
        f"AND dealing_number LIKE '{MARKER_PREFIX}%' ORDER BY id"
    )
    rows = {}
    for line in out.splitlines():
        dealing, text = line.split("|", 1)
        rows[dealing] = text
    return rows


# --- the API -------------------------------------------------------------------------------


@dataclass
class Api:
    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def serve(cluster: Cluster, env: dict[str, str], name: str) -> Api:
    port = free_port()
    log_path = cluster.root.parent / f"{cluster.root.name}-{name}.log"
    environment = {**os.environ, **env, "DATABASE_URL": cluster.url}
    environment.pop("REDIS_URL", None)  # the cache is off: answers come from the database
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/propintel"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-worker",
                "--log-level",
                "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=ROOT,
        )
    return Api(process, f"http://127.0.0.1:{port}", log_path)


def wait_ready(api: Api, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.process.poll() is not None:
            raise DrillError(f"propintel serve exited: {api.log_path.read_text()[-2000:]}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{api.base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise DrillError(f"/readyz did not answer 200 within {timeout:.0f} s")


def graphql(api: Api, query: str, variables: dict[str, Any], headers: dict[str, str]) -> bytes:
    response = httpx.post(
        f"{api.base}/graphql",
        json={"query": query, "variables": variables},
        headers=headers,
        timeout=60,
    )
    body = json.loads(response.content)
    if response.status_code != 200 or body.get("errors"):
        raise DrillError(f"GraphQL answered {response.status_code}: {response.text[:500]}")
    return response.content


# --- the drill ------------------------------------------------------------------------------


@dataclass
class Marker:
    dealing: str
    committed_at: float  # the API's answer arrived: the commit is before this
    sent_at: float
    wal_segment: str  # the WAL segment of the commit (pg_current_wal_lsn after the answer)


@dataclass
class Report:
    rpo_seconds: float = 0.0
    rto_seconds: float = 0.0
    rows_checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    point_in_time: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "rpo_seconds": self.rpo_seconds,
            "rto_seconds": self.rto_seconds,
            "rows_checked": self.rows_checked,
            "mismatches": len(self.mismatches),
            "mismatch_details": self.mismatches,
            "point_in_time": self.point_in_time,
            **self.details,
        }


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def load(cluster: Cluster, localities: str | None, years: str | None) -> None:
    command = [str(ROOT / ".venv/bin/propintel"), "load-data", "--quiet", str(DATA_DIR)]
    if localities is not None:
        command[3:3] = ["--localities", localities]
    if years is not None:
        command[3:3] = ["--years", years]
    done = subprocess.run(
        command,
        env={**os.environ, "DATABASE_URL": cluster.url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise DrillError(f"propintel load-data failed: {done.stderr[-2000:]}")


def compare(
    report: Report,
    label: str,
    expected: dict[str, tuple[int, str]],
    found: dict[str, tuple[int, str]],
) -> None:
    for table, (count, digest) in expected.items():
        report.rows_checked += found.get(table, (0, ""))[0]
        if found.get(table) != (count, digest):
            report.mismatches.append(
                f"{label}: table {table}: {found.get(table)} != expected ({count}, {digest})"
            )
    for table in found.keys() - expected.keys():
        report.mismatches.append(f"{label}: table {table} was not there before")


def check_restore(
    report: Report,
    label: str,
    cluster: Cluster,
    base: dict[str, Any],
    expected_markers: dict[str, str],
) -> dict[str, str]:
    compare(report, label, base["tables"], table_checksums(cluster, base["bounds"]))
    present = marker_rows(cluster, base["bounds"]["sales"])
    report.rows_checked += len(present)
    for dealing, text in present.items():
        if expected_markers.get(dealing) != text:
            report.mismatches.append(f"{label}: marker {dealing} differs or was never written")
    return present


def drill(args: argparse.Namespace, root: Path, report: Report) -> None:
    cluster = Cluster(root / "cluster", args.port, args.archive_timeout)
    cluster.root.mkdir()
    create_cluster(cluster)
    log(f"scratch cluster on port {cluster.port} in {cluster.root}")
    started = time.monotonic()
    if args.full:
        load(cluster, None, None)
    else:
        load(cluster, args.localities, args.years)
    report.details["load_seconds"] = round(time.monotonic() - started, 1)
    # A signed admin token (admin operations check the role, not the user row): nothing is
    # written to the database to authenticate.
    from app.auth.principal import Role
    from app.auth.tokens import AccessTokens

    secret = os.urandom(32).hex()
    env = {
        "PROPINTEL_PROFILE": "dev",
        "JWT_SECRET": secret,
        "ADMIN_API_KEY": os.urandom(16).hex(),
        "PROPINTEL_CACHE_ENABLED": "false",
        "PROPINTEL_RATE_LIMIT_ENABLED": "false",
        "PROPINTEL_TRAIN_ON_START": "false",
        "PROPINTEL_WORKER": "false",
        "PROPINTEL_INITIAL_LOAD": "none",
    }
    admin = {"Authorization": f"Bearer {AccessTokens(secret, 3600).issue(1, Role.ADMIN).token}"}
    # propintel starts (~15 s of imports here) while the backups are taken.
    api = serve(cluster, env, "serve-before")
    try:
        cluster.pgbackrest("stanza-create", what="pgbackrest stanza-create")
        cluster.pgbackrest("check", what="pgbackrest check")
        started = time.monotonic()
        cluster.pgbackrest("--type=full", "backup", what="pgbackrest backup")
        report.details["backup_seconds"] = round(time.monotonic() - started, 1)
        # pg_verifybackup reads pg_basebackup's backup_manifest; pgBackRest keeps its own
        # manifest (checked by `pgbackrest verify`), so one pg_basebackup is verified as well.
        basebackup = cluster.root / "basebackup"
        run(
            [
                PG_BIN / "pg_basebackup",
                "-h",
                "127.0.0.1",
                "-p",
                str(cluster.port),
                "-U",
                "postgres",
                "-D",
                basebackup,
                "-X",
                "stream",
                "-c",
                "fast",
                "--manifest-checksums=SHA256",
            ],
            what="pg_basebackup",
        )
        run([PG_BIN / "pg_verifybackup", basebackup], what="pg_verifybackup")
        shutil.rmtree(basebackup)
        report.details["pg_verifybackup"] = "ok (a pg_basebackup of the same cluster)"
        wait_ready(api)
        marker_property, other_locality = (
            cluster.psql(
                "SELECT (SELECT id FROM properties WHERE deleted_at IS NULL ORDER BY id LIMIT 1), "
                "(SELECT name || '|' || postcode FROM localities ORDER BY id DESC LIMIT 1)"
            )
            .strip()
            .split("|", 1)
        )
        from app.ids import encode_global_id

        property_gid = encode_global_id("Property", int(marker_property))
        name, postcode = other_locality.split("|")
        queries = [
            ("{ localities(first: 50) { edges { node { id name postcode district } } } }", {}),
            (
                """query($n: String!, $p: String!) { locality(name: $n, postcode: $p) {
                   name stats { salesCount } properties(first: 5, orderBy: LAST_SALE_PRICE_DESC) {
                   edges { node { id address lastSalePrice
                   sales(first: 5) { edges { node { price contractDate } } } } } } } }""",
                {"n": name, "p": postcode},
            ),
        ]
        bounds = {
            "sales": int(cluster.psql("SELECT coalesce(max(id), 0) FROM sales")),
            "jobs": int(cluster.psql("SELECT coalesce(max(id), 0) FROM jobs")),
        }
        # The answers first: a locality's statistics summary is written on first read.
        answers = [graphql(api, q, v, {}) for q, v in queries]
        base: dict[str, Any] = {"bounds": bounds, "tables": table_checksums(cluster, bounds)}
        markers: list[Marker] = []
        stop_at = time.monotonic() + args.marker_seconds
        while time.monotonic() < stop_at:
            dealing = f"{MARKER_PREFIX}{len(markers):05d}"
            sent = time.time()
            graphql(
                api,
                RECORD_SALE,
                {
                    "input": {
                        "propertyId": property_gid,
                        "contractDate": "1990-01-01",
                        "price": 1000 + len(markers),
                        "dealingNumber": dealing,
                        "interestPct": 50.0,
                    }
                },
                admin,
            )
            committed = time.time()
            segment = cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())").strip()
            markers.append(Marker(dealing, committed, sent, segment))
            time.sleep(args.marker_interval)
        archived = cluster.psql(
            "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"
        ).strip()
        written = marker_rows(cluster, base["bounds"]["sales"])
    finally:
        api.stop()
    if len(written) != len(markers):
        raise DrillError(f"{len(markers)} markers recorded but {len(written)} in the database")
    # The target: between two markers whose commits are in archived WAL (replay stops at the
    # first commit after the target, so that commit must be in the archive).
    safe = [
        i
        for i, m in enumerate(markers)
        if m.wal_segment < archived[:24] or m.wal_segment == archived[:24]
    ]
    if len(safe) < 2:
        raise DrillError(
            f"fewer than two markers were archived before the loss (last archived {archived!r}):"
            " write markers for longer than archive_timeout (--marker-seconds)"
        )
    k = safe[len(safe) // 2 - 1]
    target = (markers[k].committed_at + markers[k + 1].sent_at) / 2
    log(f"{len(markers)} markers written; last archived WAL {archived}; target {iso(target)}")

    # The disaster: the cluster stops without a checkpoint and its directory is gone.
    lost_at = time.time()
    cluster.stop("immediate")
    shutil.rmtree(cluster.data)

    # (a) to the end of the archive.
    restore_started = time.monotonic()
    cluster.pgbackrest("--type=default", "restore", what="pgbackrest restore (latest)")
    restored = time.monotonic()
    cluster.start()
    recovered = time.monotonic()
    api = serve(cluster, env, "serve-latest")
    try:
        wait_ready(api)
        report.rto_seconds = round(time.monotonic() - restore_started, 2)
        report.details["rto_parts_seconds"] = {
            "pgbackrest_restore": round(restored - restore_started, 2),
            "wal_replay_and_start": round(recovered - restored, 2),
            "propintel_to_readyz": round(time.monotonic() - recovered, 2),
        }
        present = check_restore(report, "latest", cluster, base, written)
        after = [graphql(api, q, v, {}) for q, v in queries]
    finally:
        api.stop()
    for i, (one, two) in enumerate(zip(answers, after, strict=True)):
        if one != two:
            report.mismatches.append(f"latest: GraphQL answer {i} differs from before the loss")
    kept = [m for m in markers if m.dealing in present]
    if [m.dealing for m in kept] != [m.dealing for m in markers[: len(kept)]]:
        report.mismatches.append("latest: the markers present are not the first ones written")
    newest_kept = kept[-1].committed_at if kept else lost_at
    report.rpo_seconds = round(max(0.0, markers[-1].committed_at - newest_kept), 2)
    report.details.update(
        markers_written=len(markers),
        markers_restored_latest=len(kept),
        lost_at=iso(lost_at) + "+00",
        archive_timeout=args.archive_timeout,
    )
    cluster.stop("fast")
    shutil.rmtree(cluster.data)

    # (b) to a time between two markers, on the backup's timeline (restore (a) made a new
    # one in the same repository).
    pitr_started = time.monotonic()
    cluster.pgbackrest(
        "--type=time",
        f"--target={iso(target)}+00",
        "--target-action=promote",
        "--target-timeline=current",
        "restore",
        what="pgbackrest restore (time)",
    )
    cluster.start()
    # Checked in the database only: serving a restored cluster was shown by (a), and each
    # start of propintel costs ~15 s of imports on this machine.
    pitr_seconds = round(time.monotonic() - pitr_started, 2)
    expected = {m.dealing: written[m.dealing] for m in markers[: k + 1]}
    present = check_restore(report, "point_in_time", cluster, base, expected)
    if set(present) != set(expected):
        report.mismatches.append(
            f"point_in_time: {len(present)} markers restored, expected the {len(expected)} "
            "committed before the target"
        )
    report.point_in_time = {
        "target": iso(target) + "+00",
        "markers_expected": len(expected),
        "markers_restored": len(present),
        "last_marker_expected": markers[k].dealing,
        "seconds_to_accepting_connections": pitr_seconds,
    }
    cluster.pgbackrest("verify", what="pgbackrest verify")
    report.details["pgbackrest_verify"] = "ok"
    cluster.stop("fast")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/dr-drill", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--slice", action="store_true", help=f"the test slice ({SLICE}; default)")
    size.add_argument("--full", action="store_true", help=f"all of {DATA_DIR}")
    parser.add_argument(
        "--localities",
        default=SLICE,
        help="the slice's localities, comma-separated (default: the test slice)",
    )
    parser.add_argument(
        "--years", default=None, help="only these years of the slice, e.g. 2023-2024 (default: all)"
    )
    parser.add_argument("--port", type=int, default=55432, help="the scratch cluster's port")
    parser.add_argument(
        "--archive-timeout",
        type=int,
        default=60,
        help="archive_timeout of the scratch cluster (docker's: 60)",
    )
    parser.add_argument(
        "--marker-seconds",
        type=float,
        default=None,
        help="how long markers are written (default: 1.5 x archive_timeout)",
    )
    parser.add_argument("--marker-interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    if args.archive_timeout < 1:
        parser.error("--archive-timeout must be at least 1 second")
    if args.marker_interval <= 0 or (args.marker_seconds is not None and args.marker_seconds <= 0):
        parser.error("--marker-interval and --marker-seconds must be positive")
    if args.marker_seconds is None:
        args.marker_seconds = 1.5 * args.archive_timeout + 2
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", args.port)) == 0:
            parser.error(f"port {args.port} is in use: pick a free one with --port")
    return args


@contextmanager
def scratch() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="dr-drill-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    try:
        yield root
    finally:
        cluster = root / "cluster" / "data"
        if (cluster / "postmaster.pid").exists():
            with suppress(DrillError, subprocess.TimeoutExpired):
                run(
                    [PG_BIN / "pg_ctl", "-D", cluster, "-m", "immediate", "-w", "stop"],
                    what="cleanup stop",
                )
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    report = Report()
    for tool in ("pgbackrest", "runuser" if os.geteuid() == 0 else "sh"):
        if shutil.which(tool) is None:
            log(f"{tool} is not installed (apt-get install -y pgbackrest)")
            return 1
    with scratch() as root:
        # SIGTERM/SIGINT end the drill through the cleanup above.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            drill(args, root, report)
        except DrillError as error:
            log(str(error))
            report.mismatches.append(f"the drill failed: {error}")
            print(json.dumps(report.as_json(), indent=2))
            return 1
    print(json.dumps(report.as_json(), indent=2))
    return 1 if report.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())

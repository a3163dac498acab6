"""scripts/dr-drill (issue 18) end to end: a scratch cluster of its own backed up with
pgBackRest, marker sales through the API, the cluster lost and restored to the archive's end
and to a time between two markers, checked row by row (real initdb, pgbackrest,
pg_basebackup, pg_verifybackup and `propintel serve`; nothing is mocked).

In the suite: one locality's last year and a 2 s archive_timeout, so that markers written
for a few seconds are archived (the drill's own default is docker's 60 s). The full data:
`scripts/test -m full_data tests/test_dr_drill.py` (loads all of ../shared/data into the
scratch cluster: 10+ minutes)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRILL = ROOT / "scripts/dr-drill"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def drill(*args: str, timeout: float) -> dict[str, Any]:
    if shutil.which("pgbackrest") is None:
        pytest.fail("pgbackrest is not installed (scripts/test installs it)")
    done = subprocess.run(
        [str(DRILL), "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def check(report: dict[str, Any], archive_timeout: int) -> None:
    assert report["mismatches"] == 0, report["mismatch_details"]
    assert report["rows_checked"] > 0
    assert 0 <= report["rpo_seconds"] <= archive_timeout
    assert report["rto_seconds"] > 0
    assert report["pg_verifybackup"].startswith("ok")
    assert report["pgbackrest_verify"] == "ok"
    pitr = report["point_in_time"]
    # Exactly the markers committed before the target: the first N, no later one.
    assert pitr["markers_restored"] == pitr["markers_expected"] >= 1
    assert pitr["markers_expected"] < report["markers_written"]
    assert report["markers_restored_latest"] >= pitr["markers_expected"]


def test_the_drill_restores_the_slice_to_the_latest_point_and_to_a_time() -> None:
    report = drill(
        "--localities",
        "TEMPE",
        "--years",
        "2024",
        "--archive-timeout",
        "2",
        "--marker-seconds",
        "5",
        timeout=300,
    )
    check(report, 2)


def test_a_port_in_use_is_refused_with_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [str(DRILL), "--port", str(port)], capture_output=True, text=True, check=False
        )
    assert done.returncode == 2
    assert f"port {port} is in use" in done.stderr


@pytest.mark.full_data
def test_the_drill_on_the_full_data_meets_the_targets() -> None:
    """Docker's archive_timeout (60 s): RPO <= 60 s, RTO under 5 minutes (issue 18)."""
    report = drill("--full", timeout=3 * 3600)
    check(report, 60)
    assert report["rto_seconds"] < 300

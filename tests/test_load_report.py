"""bench/load/run's quick mode end to end: real `propintel serve` processes, Locust and the
report, on a database of this module's own (the admin trickle writes to it)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.load.documents import app_documents
from tests.support.databases import (
    create_pg_database,
    drop_pg_database,
    load_small,
    pg_database_name,
)

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def load_url(data_dir: Path) -> Iterator[str]:
    name = pg_database_name("loadtest")
    url = create_pg_database(name)
    load_small(url)  # too little to train a model on: estimates fail, and are counted
    yield url
    drop_pg_database(name)


def test_app_documents_are_read_from_the_web_app() -> None:
    documents = app_documents()
    assert {"Suggest", "Property", "PropertyEstimate", "Locality", "LocalitySeries", "Me"} <= set(
        documents
    )
    assert "${" not in documents["Property"]  # SALE_FIELDS substituted
    assert "isMarketSale" in documents["Property"]


@pytest.mark.slow  # ~40 s with its database: a bench's smoke run (scripts/test -m slow)
def test_quick_run_writes_a_sane_report(load_url: str, tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [sys.executable, "-m", "bench.load.run", "--quick", "--database-url", load_url]
    # One configuration (two workers, the cache on: both processes and Redis sampled) keeps
    # the test under 40 s; no model, estimates sent anyway: failures to count.
    command += ["--configurations", "w2-on", "--out", str(out), "--port", "8149"]
    command += ["--no-train", "--estimates-anyway", "--max-error-ratio", "1"]
    command += ["--users", "4,8", "--step-seconds", "5"]  # 8: signed-in users among them
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    for plot in ("throughput.png", "latency.png", "errors.png", "cpu.png"):
        assert (out / plot).read_bytes().startswith(PNG), plot
    steps = json.loads((out / "steps.json").read_text())
    assert [(s["configuration"], s["users"]) for s in steps] == [
        ("2 workers, cache on", 4),
        ("2 workers, cache on", 8),
    ]
    for step in steps:
        assert step["requests"] > 0
        assert 0 <= step["failures"] <= step["requests"]
        assert 0 < step["p50_ms"] <= step["p95_ms"] <= step["p99_ms"]
        assert step["rps"] > 0
        assert step["cpu"]["server"] > 0  # the server's processes were found and sampled
    operations = {op["name"]: op for s in steps for op in s["operations"]}
    assert {"Suggest", "Property", "PropertyEstimate", "Me"} <= set(operations)
    # No price model: every estimate fails (SERVICE_UNAVAILABLE), and is counted as failed.
    estimates = [op for s in steps for op in s["operations"] if op["name"] == "PropertyEstimate"]
    assert all(op["failures"] == op["requests"] > 0 for op in estimates)
    assert sum(s["failures"] for s in steps) >= sum(op["failures"] for op in estimates)

    report = (out / "report.md").read_text()
    assert "## At the knee" in report
    assert re.search(r"\| 2 workers, cache on \| (\d+|none) \|", report)
    assert "SERVICE_UNAVAILABLE" in report  # the failures are listed, with their code
    for step in steps:  # and counted in the table of steps
        assert f"| {step['requests']} | {step['rps']:.1f} |" in report
    assert not (out / "sample.json").exists()  # the tokens are not left with the results


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.load.run import main

    for arguments in (["--configurations", "w3-on"], ["--users", "0,4"]):
        with pytest.raises(SystemExit) as exited:
            main(arguments)
        assert exited.value.code == 2
    errors = capsys.readouterr().err
    assert "unknown configurations ['w3-on']" in errors
    assert "--users and --step-seconds must be positive" in errors

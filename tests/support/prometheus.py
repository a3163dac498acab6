"""Prometheus for the tests: the repository's configuration, rules and dashboards as data,
the PromQL operands an alert compares, and a real Prometheus (Debian's) on loopback."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.metrics import MetricWrapperBase
from ruamel.yaml import YAML

from app.telemetry import metrics
from tests.support.live import free_port

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "docker" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
GRAFANA_DIR = REPO / "docker" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
COMPOSE = REPO / "docker" / "compose.yaml"

RANGE = "1m"
"""What Grafana's interval variables ($__rate_interval, ...) stand for in a test query."""
GRAFANA_INTERVALS = ("__rate_interval", "__interval", "__range")


SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


def metric_families() -> set[str]:
    """The families of the catalogue (app/telemetry/metrics.py), those collected at scrape
    time included, by family name (a counter's without `_total`)."""
    names = set(metrics.SCRAPE_TIME)
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            names |= {family.name for family in value.describe()}
    return names


def catalogued_names() -> set[str]:
    """Every series name /metrics shows: the catalogue's families with their samples'
    suffixes, and the families collected at scrape time."""
    names = set(metrics.SCRAPE_TIME)
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names |= {family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]}
    return names


def binary(name: str) -> str:
    """The path of `name` (promtool, prometheus), or the test is skipped saying why."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        pytest.skip(f"{name} is missing: scripts/test installs it (Debian's prometheus package)")
    return found


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path)


@dataclass(frozen=True, slots=True)
class Rule:
    group: str
    name: str
    """The alert's name, or the series a recording rule records."""
    expr: str
    alert: bool
    spec: Mapping[str, Any]


def rules() -> list[Rule]:
    found = []
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for spec in group["rules"]:
                alert = "alert" in spec
                name = spec["alert"] if alert else spec["record"]
                found.append(Rule(group["name"], name, " ".join(spec["expr"].split()), alert, spec))
    return found


@dataclass(frozen=True, slots=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str
    variables: Mapping[str, str]
    """What the dashboard's template variables stand for in a test (`variable_values`)."""

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}"

    def promql(self) -> str:
        """The query as Grafana sends it (`substitute`)."""
        return substitute(self.expr, self.variables)


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in DASHBOARDS]


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows included; rows themselves are not panels
    with queries."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries() -> list[PanelQuery]:
    found = []
    for board in dashboards():
        variables = variable_values(board)
        for panel in panels(board):
            for target in panel.get("targets", []):
                ref = target.get("refId", "?")
                found.append(
                    PanelQuery(board["title"], panel["title"], ref, target["expr"], variables)
                )
    return found


def variable_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """What each query variable stands for in a test query: its "All" value, else any."""
    return {
        variable["name"]: variable.get("allValue") or ".+"
        for variable in dashboard.get("templating", {}).get("list", [])
        if variable.get("type") in ("query", "custom", "textbox")
    }


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """`expr` as Grafana sends it: interval variables as RANGE, template variables as
    `variables` says ($name and ${name})."""
    values = dict.fromkeys(GRAFANA_INTERVALS, RANGE) | dict(variables)

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"unknown variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


# --- PromQL operands -------------------------------------------------------------------
# Prometheus 2.42 has no parse endpoint, so the split is done here: at the top level of an
# expression (outside parentheses, braces, brackets and strings).
SET_OPERATORS = ("and", "or", "unless")
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
MATCHING = re.compile(
    r"^\s*(?:on|ignoring)\s*\([^)]*\)\s*(?:group_(?:left|right)\s*(?:\([^)]*\))?)?"
)
NAME_CHAR = re.compile(r"[\w:]")
NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


def _top_level(expr: str) -> Iterator[int]:
    """Indexes of the characters of `expr` outside brackets and strings."""
    depth = 0
    quote: str | None = None
    for index, char in enumerate(expr):
        if quote is not None:
            if char == quote and expr[index - 1] != "\\":
                quote = None
            continue
        if char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            yield index


def _split_set_operations(expr: str) -> list[str]:
    operands, start = [], 0
    for index in _top_level(expr):
        for word in SET_OPERATORS:
            end = index + len(word)
            if (
                expr.startswith(word, index)
                and (index == 0 or not NAME_CHAR.match(expr[index - 1]))
                and (end == len(expr) or not NAME_CHAR.match(expr[end]))
            ):
                operands.append(expr[start:index])
                start = end
                break
    operands.append(expr[start:])
    return [MATCHING.sub("", operand).strip() for operand in operands]


def _split_comparison(expr: str) -> tuple[str, str] | None:
    indexes = set(_top_level(expr))
    for index in sorted(indexes):
        for operator in COMPARISONS:
            if expr.startswith(operator, index):
                right = expr[index + len(operator) :].strip()
                right = re.sub(r"^bool\b", "", right)
                return expr[:index].strip(), MATCHING.sub("", right).strip()
    return None


def compared_operands(expr: str) -> list[str]:
    """The expressions an alert compares, without their comparisons: for
    `a > 0.05 and on (job) b > 0.2` that is [a, b]; for `x > 2 * y`, [x, 2 * y]. An alert's
    expression is empty while it does not fire; these must hold data all the same."""
    operands = []
    for operand in _split_set_operations(expr):
        split = _split_comparison(operand)
        if split is None:
            operands.append(operand)
            continue
        left, right = split
        operands.append(left)
        if not NUMBER.match(right):
            operands.append(right)
    return operands


# --- a real Prometheus -----------------------------------------------------------------
class Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=10)

    def api(self, path: str, **params: str) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get(f"/api/v1/{path}", params=params).json()
        return body

    def query(self, expr: str) -> dict[str, Any]:
        """/api/v1/query's answer (status, data or errorType/error)."""
        return self.api("query", query=expr)

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["data"]["groups"]
        return groups

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["data"]["activeTargets"]
        return active


def config_for(targets: Mapping[str, str], interval: str = "1s") -> dict[str, Any]:
    """docker/prometheus/prometheus.yml for a test: each scrape job of `targets` (job name
    -> host:port) as the file configures it (paths, relabelling) but at that address and
    `interval`; the same rule files; evaluation every `interval`."""
    config = load_yaml(CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    scrape_configs = []
    for name, target in targets.items():
        job = {
            key: value
            for key, value in jobs[name].items()
            if key not in ("static_configs", "dns_sd_configs")
        }
        scrape_configs.append(
            job | {"static_configs": [{"targets": [target]}], "scrape_interval": interval}
        )
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in RULE_FILES],
        "scrape_configs": scrape_configs,
    }


@contextlib.contextmanager
def running_prometheus(config: Mapping[str, Any], directory: Path) -> Iterator[Prometheus]:
    """/usr/bin/prometheus with `config` (written as JSON, which YAML reads) on a free
    loopback port, its storage in `directory`; stopped on exit."""
    executable = binary("prometheus")
    config_file = directory / "prometheus.json"
    config_file.write_text(json.dumps(config, indent=2))
    port = free_port()
    log = (directory / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            executable,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited:\n{(directory / 'prometheus.log').read_text()}")
            try:
                if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("prometheus was not ready within 30 s")
            time.sleep(0.1)
        prometheus = Prometheus(base)
        try:
            yield prometheus
        finally:
            prometheus.http.close()
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()

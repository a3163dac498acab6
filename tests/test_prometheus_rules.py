"""The alert and recording rules (docker/prometheus/rules): promtool checks them and runs
their unit tests (docker/prometheus/tests), which cover every alert firing and not firing;
every alert carries what the person paged needs; every metric they name is in the
catalogue (app/telemetry/metrics.py), so a renamed family cannot leave a rule silent.

tests/test_observability_stack.py runs the same rules in a real Prometheus."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from typing import Any

import pytest

from tests.support.prometheus import (
    REPO,
    RULE_FILES,
    RULE_TESTS,
    binary,
    catalogued_names,
    compared_operands,
    load_yaml,
    panel_queries,
    rules,
)

SEVERITIES = {"critical", "warning"}
NAME = re.compile(r"\b(propintel[_:][\w:]*)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=REPO
    )


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", *map(str, RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert RULE_FILES, "no rule files in docker/prometheus/rules"


def test_rule_unit_tests_pass() -> None:
    done = promtool("test", "rules", *map(str, RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_TESTS), done.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    alerts = {rule.name for rule in rules() if rule.alert}
    expected: dict[str, set[bool]] = defaultdict(set)  # alert -> {fires?} the tests expect
    for path in RULE_TESTS:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                expected[check["alertname"]].add(bool(check.get("exp_alerts")))
    assert set(expected) <= alerts, f"tests of alerts that do not exist: {set(expected) - alerts}"
    untested = {
        alert: sorted({"firing", "not firing"} - {"firing" if f else "not firing" for f in seen})
        for alert in alerts
        if (seen := expected.get(alert, set())) != {True, False}
    }
    assert not untested, f"alerts without these cases in docker/prometheus/tests: {untested}"


def test_alerts_say_how_bad_what_and_where_to_look() -> None:
    runbooks = (REPO / "docs" / "runbooks.md").read_text()
    anchors = {heading_anchor(line) for line in runbooks.splitlines() if line.startswith("#")}
    for rule in (rule for rule in rules() if rule.alert):
        spec: dict[str, Any] = dict(rule.spec)
        assert "for" in spec, f"{rule.name}: no `for` (one bad evaluation would page)"
        assert spec.get("labels", {}).get("severity") in SEVERITIES, rule.name
        annotations = spec.get("annotations", {})
        assert {"summary", "description", "runbook"} <= set(annotations), rule.name
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "docs/runbooks.md", rule.name
        assert anchor in anchors, f"{rule.name}: #{anchor} is no heading of docs/runbooks.md"


def heading_anchor(line: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as -."""
    text = line.lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_rules_and_panels_name_only_catalogued_series() -> None:
    """A family renamed in app/telemetry/metrics.py without the rules and dashboards would
    leave an alert that can never fire: every name must be one /metrics shows (or a
    recording rule's)."""
    recorded = {rule.name for rule in rules() if not rule.alert}
    known = catalogued_names() | recorded
    exprs = [(rule.name, rule.expr) for rule in rules()]
    exprs += [(f"{q.dashboard} / {q.panel}", q.expr) for q in panel_queries()]
    unknown = {
        (where, name) for where, expr in exprs for name in NAME.findall(expr) if name not in known
    }
    assert not unknown, f"series no metric family or recording rule makes: {sorted(unknown)}"
    used = {name for _, expr in exprs for name in NAME.findall(expr)}
    assert recorded <= used, f"recording rules nothing uses: {recorded - used}"


@pytest.mark.parametrize(
    ("expr", "operands"),
    [
        ("a > 0.05 and on (job) sum by (job) (b) > 0.2", ["a", "sum by (job) (b)"]),
        (
            "time() - max by (kind) (x) > 2 * max by (kind) (y)",
            ["time() - max by (kind) (x)", "2 * max by (kind) (y)"],
        ),
        (
            'max_over_time(m{state="OPEN", d!="x"}[1m]) == 1',
            ['max_over_time(m{state="OPEN", d!="x"}[1m])'],
        ),
        ('x{label="a and b"} unless ignoring (pool) y >= bool 3', ['x{label="a and b"}', "y"]),
        ("candidates_or_not", ["candidates_or_not"]),
    ],
)
def test_an_alert_compares_these_operands(expr: str, operands: list[str]) -> None:
    """tests/test_observability_stack.py checks these hold data (Prometheus 2.42 has no
    parse endpoint to ask)."""
    assert compared_operands(expr) == operands

"""The capacity report of a load run: report.md and PNG plots (matplotlib, Agg: no display)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; before pyplot is imported
import matplotlib.pyplot as plt

SATURATED = 85.0  # % of one core per server process (or of the cores PostgreSQL may use)


@dataclass
class Step:
    configuration: str
    users: int
    seconds: float
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu: dict[str, float]  # % of one core, mean over the measured window
    operations: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def passes(self, objective_ms: float, max_error_ratio: float) -> bool:
        return (
            self.requests > 0
            and self.p95_ms <= objective_ms
            and self.error_ratio <= max_error_ratio
        )


@dataclass(frozen=True)
class Context:
    started: datetime
    finished: datetime
    database: str
    model: str
    objective_p95_ms: float
    max_error_ratio: float
    step_seconds: int
    quick: bool
    cores: int
    workers: dict[str, int]
    load_average: tuple[float, float, float]


@dataclass(frozen=True)
class Knee:
    configuration: str
    best: Step | None  # the last step that met the objective
    first_miss: Step | None  # the step that missed it (None: never missed)
    bottleneck: str


def by_configuration(steps: list[Step]) -> dict[str, list[Step]]:
    grouped: dict[str, list[Step]] = {}
    for step in steps:
        grouped.setdefault(step.configuration, []).append(step)
    return grouped


def bottleneck(step: Step, workers: int, cores: int) -> str:
    """Names what ran out at `step`, from the CPU shares measured through it."""
    server, pg = step.cpu["server"], step.cpu["postgresql"]
    locust, other, machine = step.cpu["locust"], step.cpu["other"], step.cpu["machine"]
    per_process = server / workers
    shares = (
        f"server {server:.0f}% ({per_process:.0f}% per process), PostgreSQL {pg:.0f}%, "
        f"Locust {locust:.0f}%, other work {other:.0f}%, machine {machine:.0f}% of {cores * 100}%"
    )
    if per_process >= SATURATED:
        verdict = "API-bound: the server's processes are CPU-saturated"
    elif machine >= SATURATED * cores:
        biggest = max(
            ("the API", server),
            ("PostgreSQL", pg),
            ("Locust", locust),
            ("other work", other),
            key=lambda x: x[1],
        )
        verdict = f"machine-bound: the cores are saturated, most of them by {biggest[0]}"
    elif pg >= SATURATED * cores:
        verdict = "PostgreSQL-bound: its backends use the cores"
    else:
        verdict = "no CPU saturated: waits (pool, locks, I/O) or the client limit it"
    return f"{verdict} ({shares})"


def knees(steps: list[Step], context: Context) -> list[Knee]:
    found = []
    for name, series in by_configuration(steps).items():
        passing = [s for s in series if s.passes(context.objective_p95_ms, context.max_error_ratio)]
        missing = [
            s for s in series if not s.passes(context.objective_p95_ms, context.max_error_ratio)
        ]
        best = passing[-1] if passing else None
        miss = missing[0] if missing else None
        at = miss or best
        assert at is not None
        found.append(Knee(name, best, miss, bottleneck(at, context.workers[name], context.cores)))
    return found


def _plot_lines(path: Path, steps: list[Step], title: str, ylabel: str, value: str) -> None:
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for name, series in by_configuration(steps).items():
        users = [s.users for s in series]
        values = [
            float(getattr(s, value)) * (100.0 if value == "error_ratio" else 1.0) for s in series
        ]
        axes.plot(users, values, marker="o", label=name)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("users")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _plot_panels(path: Path, steps: list[Step], context: Context, kind: str) -> None:
    grouped = by_configuration(steps)
    columns = min(2, len(grouped))
    rows = (len(grouped) + columns - 1) // columns
    figure, grid = plt.subplots(rows, columns, figsize=(5.5 * columns, 3.6 * rows), squeeze=False)
    for index, (name, series) in enumerate(grouped.items()):
        axes = grid[index // columns][index % columns]
        users = [s.users for s in series]
        if kind == "latency":
            for key, style in (("p50_ms", ":"), ("p95_ms", "-"), ("p99_ms", "--")):
                axes.plot(
                    users, [getattr(s, key) for s in series], style, marker="o", label=key[:3]
                )
            axes.axhline(
                context.objective_p95_ms, color="red", linewidth=0.8, label="objective (p95)"
            )
            axes.set_ylabel("ms")
        else:
            for key in ("server", "postgresql", "locust", "other"):
                axes.plot(users, [s.cpu[key] for s in series], marker="o", label=key)
            axes.axhline(100.0 * context.cores, color="grey", linewidth=0.8, label="all cores")
            axes.set_ylabel("% of one core")
        axes.set_xscale("log", base=2)
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("users")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
    for index in range(len(grouped), rows * columns):
        grid[index // columns][index % columns].set_visible(False)
    figure.suptitle("latency percentiles" if kind == "latency" else "CPU during each step")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


PLOTS = ("throughput.png", "latency.png", "errors.png", "cpu.png")


def write(out: Path, context: Context, steps: list[Step]) -> None:
    if not steps:
        raise SystemExit("no step ran: nothing to report")
    _plot_lines(out / "throughput.png", steps, "throughput", "requests/s", "rps")
    _plot_panels(out / "latency.png", steps, context, "latency")
    _plot_lines(out / "errors.png", steps, "failed requests", "% of requests", "error_ratio")
    _plot_panels(out / "cpu.png", steps, context, "cpu")
    (out / "report.md").write_text(markdown(context, steps), encoding="utf-8")


def markdown(context: Context, steps: list[Step]) -> str:
    minutes = (context.finished - context.started).total_seconds() / 60
    lines = [
        f"# Load test {context.started:%Y-%m-%d %H:%M} UTC{' (quick)' if context.quick else ''}",
        "",
        f"`bench/load/run{' --quick' if context.quick else ''}`: {minutes:.1f} minutes; "
        f"{context.cores} cores; load average at the end {context.load_average[0]:.2f} / "
        f"{context.load_average[1]:.2f} / {context.load_average[2]:.2f}. The machine is shared "
        '(Locust runs on it too; "other" is CPU used by the machine\'s other work during the '
        "step).",
        f"Database: {context.database}. Estimates: {context.model}.",
        f"Objective: p95 <= {context.objective_p95_ms:.0f} ms with at most "
        f"{context.max_error_ratio:.1%} failed requests; steps of {context.step_seconds} s "
        "measured after every user has started.",
        "",
        "## At the knee",
        "",
        "| configuration | users at the objective | req/s | p95 ms | req/s per core used | "
        "first miss | bottleneck |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for knee in knees(steps, context):
        best = knee.best
        if best is not None:
            used = (best.cpu["server"] + best.cpu["postgresql"]) / 100.0
            per_core = f"{best.rps / used:.0f}" if used > 0 else "-"
            cells = f"{best.users} | {best.rps:.1f} | {best.p95_ms:.0f} | {per_core}"
        else:
            cells = "none | - | - | -"
        miss = knee.first_miss
        missed = (
            f"{miss.users} users: p95 {miss.p95_ms:.0f} ms, {miss.error_ratio:.2%} failed"
            if miss
            else "not reached"
        )
        lines.append(f"| {knee.configuration} | {cells} | {missed} | {knee.bottleneck} |")
    lines += [
        "",
        "req/s per core used: requests per second over the CPU the server and PostgreSQL "
        "used at that step (Locust's and the machine's other work left out).",
        "",
        "![throughput](throughput.png)",
        "![latency](latency.png)",
        "![errors](errors.png)",
        "![cpu](cpu.png)",
        "",
        "## Every step",
        "",
        "| configuration | users | requests | req/s | p50 | p95 | p99 ms | failed | server % | "
        "PostgreSQL % | Locust % | other % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        lines.append(
            f"| {s.configuration} | {s.users} | {s.requests} | {s.rps:.1f} | {s.p50_ms:.0f} | "
            f"{s.p95_ms:.0f} | {s.p99_ms:.0f} | {s.failures} | {s.cpu['server']:.0f} | "
            f"{s.cpu['postgresql']:.0f} | {s.cpu['locust']:.0f} | {s.cpu['other']:.0f} |"
        )
    lines += ["", "## Operations at each configuration's last step", ""]
    for name, series in by_configuration(steps).items():
        last = series[-1]
        lines += [
            f"### {name}, {last.users} users",
            "",
            "| operation | requests | failed | p50 | p95 | p99 ms |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for op in sorted(last.operations, key=lambda o: -int(o["requests"])):
            lines.append(
                f"| {op['name']} | {op['requests']} | {op['failures']} | {op['p50_ms']:.0f} | "
                f"{op['p95_ms']:.0f} | {op['p99_ms']:.0f} |"
            )
        if last.errors:
            lines += ["", "Failures:", ""]
            lines += [f"- {e['name']}: {e['error']} (x{e['count']})" for e in last.errors]
        lines.append("")
    return "\n".join(lines)

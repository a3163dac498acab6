"""`propintel serve` in a process of its own, for tests that need real processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class LiveServer:
    base: str
    process: subprocess.Popen[str]
    """`propintel serve` itself (with --workers N, uvicorn's parent of the workers)."""


@contextlib.contextmanager
def live_server(
    env: Mapping[str, str],
    *,
    ready_path: str = "/readyz",
    timeout: float = 60,
    args: Sequence[str] = (),
) -> Iterator[str]:
    """Yields the server's base URL once `ready_path` answers 200; `env` is added to this
    process's environment minus DATABASE_URL and REDIS_URL (give them in `env`). Rate limits
    are off unless `env` turns them on (these tests send load on purpose), and so is the
    first-start model training (a background process would skew their timings). `args`:
    more `serve` arguments (e.g. `--workers 2`)."""
    with live_server_process(env, ready_path=ready_path, timeout=timeout, args=args) as server:
        yield server.base


@contextlib.contextmanager
def live_server_process(
    env: Mapping[str, str],
    *,
    ready_path: str = "/readyz",
    timeout: float = 60,
    args: Sequence[str] = (),
) -> Iterator[LiveServer]:
    """`live_server`, yielding the process too (tests that signal it or its workers)."""
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    command += ["--log-level", "warning", *args]
    process = subprocess.Popen(
        command,
        env={"PROPINTEL_RATE_LIMIT_ENABLED": "false", "PROPINTEL_TRAIN_ON_START": "false"}
        | inherited
        | dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"serve exited early:\n{output}")
            try:
                if httpx.get(base + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail(f"serve did not answer {ready_path} within {timeout:.0f} s")
        yield LiveServer(base, process)
    finally:
        process.terminate()
        process.wait(timeout=20)

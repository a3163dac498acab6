"""stamina in test mode for the whole run (registered with `-p tests.plugins.stamina_testing`
in pyproject.toml's addopts): no backoff sleeps between attempts.

The number of attempts is capped, not replaced: `set_testing(True, attempts=1)` would make
every retry a single attempt and break the tests that check retrying itself
(tests/test_resilience.py::test_dependency_retries_transient_errors_then_succeeds expects
three attempts from Retry.STANDARD). With `cap=True` each policy keeps its own count, no
call makes more than MAX_ATTEMPTS, and none of them waits.
"""

from __future__ import annotations

import pytest
import stamina

MAX_ATTEMPTS = 5  # Retry.AGGRESSIVE, the most of any policy in app/resilience/retry.py


def pytest_configure(config: pytest.Config) -> None:
    stamina.set_testing(True, attempts=MAX_ATTEMPTS, cap=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    stamina.set_testing(False)

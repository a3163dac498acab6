"""Where the test data and services are, and the settings every test app starts from."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from app.settings import Profile, Settings
from tests.support.credentials import BOOTSTRAP_KEY, JWT_SECRET

DATA_DIR = Path(__file__).resolve().parents[2] / "../shared/data"
REDIS_URL = os.environ.get("PROPINTEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
COMPILED_EXECUTION = {"compiled": True, "standard": False}
"""`PROPINTEL_COMPILED_EXECUTION` of each executor (the `executor` fixture's values)."""


def settings_for(url: str, **overrides: Any) -> Settings:
    """Test settings. The cache, rate limits and job worker are off unless a test turns them on: most
    tests check what the database path does (results, statement counts) and walk whole
    lists; tests/test_cache*.py and tests/test_rate_limits.py check those."""
    values: dict[str, Any] = {
        "DATABASE_URL": url,
        "PROPINTEL_PROFILE": Profile.TEST,
        "PROPINTEL_DATA_DIR": DATA_DIR,
        "PROPINTEL_CACHE_ENABLED": False,
        "PROPINTEL_RATE_LIMIT_ENABLED": False,
        "PROPINTEL_TRAIN_ON_START": False,
        # No in-process job worker unless a test asks for one (PROPINTEL_WORKER=True): many
        # apps share each test database, and a worker in one would run another test's jobs.
        "PROPINTEL_WORKER": False,
        "JWT_SECRET": JWT_SECRET,
        "ADMIN_API_KEY": BOOTSTRAP_KEY,
        **overrides,
    }
    return Settings(**values)


def new_namespace(prefix: str = "t") -> str:
    """A Redis namespace nobody else uses (another test, fixture or parallel run)."""
    return f"{prefix}{uuid.uuid4().hex[:16]}"


def redis_cache_settings(url: str, **overrides: Any) -> Settings:
    """`settings_for` with the two-tier cache on: the test Redis under a namespace of its own
    (`PROPINTEL_CACHE_NAMESPACE` to share one), no warming unless `PROPINTEL_CACHE_WARM`
    asks for it (warming in the background would make hits and misses depend on timing)."""
    values: dict[str, Any] = {
        "PROPINTEL_CACHE_ENABLED": True,
        "REDIS_URL": REDIS_URL,
        "PROPINTEL_CACHE_NAMESPACE": new_namespace(),
        "PROPINTEL_CACHE_WARM": 0,
        **overrides,
    }
    return settings_for(url, **values)


def l1_cache_settings(url: str, **overrides: Any) -> Settings:
    """`settings_for` with the cache on and no Redis: L1 only (the embedded default, and prod's
    without REDIS_URL); no warming unless `PROPINTEL_CACHE_WARM` asks for it."""
    values: dict[str, Any] = {
        "PROPINTEL_CACHE_ENABLED": True,
        "REDIS_URL": None,
        "PROPINTEL_CACHE_WARM": 0,
        **overrides,
    }
    return settings_for(url, **values)

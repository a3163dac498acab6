"""Per-dependency overrides of the resilience policies, from the environment.

`PROPINTEL_RESILIENCE_POSTGRESQL` and `PROPINTEL_RESILIENCE_REDIS` take JSON, e.g.
`{"timeout_s": 1.5, "retry": "STANDARD", "breaker": {"failure_rate_threshold": 40}}`; what is
not given keeps the profile's value. Unknown keys and impossible values stop startup with a
message naming the setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BreakerOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: Literal["count", "time"] | None = None
    window_size: int | None = Field(default=None, ge=1, le=100_000)
    minimum_calls: int | None = Field(default=None, ge=1, le=100_000)
    failure_rate_threshold: float | None = Field(default=None, gt=0, le=100)
    slow_call_duration_s: float | None = Field(default=None, gt=0, le=600)
    slow_call_rate_threshold: float | None = Field(default=None, gt=0, le=100)
    wait_in_open_s: float | None = Field(default=None, gt=0, le=3600)
    half_open_calls: int | None = Field(default=None, ge=1, le=1000)


class BulkheadOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrent: int | None = Field(default=None, ge=1, le=10_000)
    max_waiting: int | None = Field(default=None, ge=0, le=100_000)
    max_wait_s: float | None = Field(default=None, ge=0, le=600)


class DependencyOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float | None = Field(default=None, gt=0, le=600)
    retry: Literal["NONE", "FAST", "STANDARD", "AGGRESSIVE"] | None = None
    bulkhead: BulkheadOverrides | None = None
    breaker: BreakerOverrides | None = None

"""Deployment profiles: what differs between a developer's machine, the tests and production."""

from __future__ import annotations

from enum import StrEnum


class Profile(StrEnum):
    DEV = "dev"
    TEST = "test"
    PROD = "prod"

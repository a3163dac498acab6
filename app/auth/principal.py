"""Who a request is from. Every request has a principal; anonymous ones are keyed by address."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.settings.query_limits import RoleName


class Role(StrEnum):
    USER = "USER"
    ADMIN = "ADMIN"


class Via(StrEnum):
    ANONYMOUS = "anonymous"
    ACCESS_TOKEN = "access_token"
    API_KEY = "api_key"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int | None
    role: Role | None
    via: Via
    client: str
    """What rate limits count against: `user:<id>`, `key:<id>` or `ip:<address>`."""
    bootstrap: bool = False
    """The request carried ADMIN_API_KEY: it may create the first admin, nothing else."""

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def role_name(self) -> RoleName:
        """The limits and cache partition this principal falls under."""
        if self.role is Role.ADMIN:
            return "admin"
        if self.role is Role.USER:
            return "user"
        return "anonymous"


def anonymous(address: str, *, bootstrap: bool = False) -> Principal:
    return Principal(None, None, Via.ANONYMOUS, f"ip:{address}", bootstrap=bootstrap)

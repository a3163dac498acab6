"""The per-request context every resolver receives as `info.context`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from strawberry.types import Info as StrawberryInfo

from app.accounts.service import Accounts
from app.alerts.service import AlertService
from app.auth.principal import Principal
from app.cache import Cache, RequestScope
from app.cache.service import CacheService
from app.estimates.service import ModelRegistry
from app.estimates.tasks import Trainer
from app.jobs.service import JobQueue
from app.settings import Profile, Settings
from app.streams.broker import AlertBroker
from app.webhooks.service import WebhookService
from db.engine import Database
from loaders import Loaders


@dataclass(slots=True)
class Context:
    request: Request
    response: Response | None
    db: Database
    settings: Settings
    loaders: Loaders
    cache: Cache
    """Read-through cache for values loaders do not cover (root lists)."""
    caching: CacheService | None
    """Invalidation, warming and statistics; None when caching is off."""
    scope: RequestScope | None
    """What this operation read through the cache (for the whole-operation cache)."""
    principal: Principal
    accounts: Accounts
    models: ModelRegistry | None
    """The active price model (None: estimates are off in this process)."""
    trainer: Trainer | None
    alerts: AlertService
    webhooks: WebhookService
    jobs: JobQueue
    broker: AlertBroker
    """Wakes subscriptions when alerts are made (the worker publishes, subscriptions listen)."""
    connection_params: dict[str, Any] | None = None
    """A websocket's connection_init payload (Strawberry sets it; the view reads the
    credential from it)."""
    field_batches: dict[Any, Any] = field(default_factory=dict)
    """Loader-backed fields' per-request gatherers (resolvers/fields.py), by field and
    arguments: how Strawberry's executor batches them too."""

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin

    @property
    def introspection(self) -> bool:
        """Off in prod: `__type` answers null (schema/introspection.py)."""
        return self.settings.profile is not Profile.PROD


Info = StrawberryInfo[Context, None]

"""Process settings, read once from the environment (pydantic-settings).

Every knob has a default that gives the embedded mode: a SQLite file under ./var, no Redis,
the shared NSW data directory when it sits beside the checkout.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.settings.cache import Ttls
from app.settings.policies import dependency_configs
from app.settings.profiles import Profile as Profile  # re-exported: the profile is a setting
from app.settings.query_limits import AdminLimits, AnonymousLimits, QueryLimits, UserLimits
from app.settings.rate_limits import RateLimit
from app.settings.resilience import DependencyOverrides

REPO_ROOT = Path(__file__).resolve().parent.parent


class DbSslMode(StrEnum):
    DISABLE = "disable"
    ALLOW = "allow"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"


# Values people paste from examples; a secret equal to one of them is no secret.
_PLACEHOLDERS = ("change", "secret", "example", "default", "password", "xxxx", "todo", "test")


def looks_like_placeholder(value: str) -> bool:
    lowered = value.lower()
    return len(set(lowered)) < 6 or any(lowered.startswith(word) for word in _PLACEHOLDERS)


class InitialLoad(StrEnum):
    """What `propintel serve` loads into an empty embedded database before serving."""

    RECENT = "recent"  # the last few registration years: serves within minutes
    FULL = "full"  # 2001-2024, all 4.7 million sales
    NONE = "none"


def _default_data_dir() -> Path | None:
    for candidate in (Path.cwd() / "../shared/data", REPO_ROOT / "../shared/data"):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def normalise_database_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://, sqlite:///) and pick the
    async driver this service uses for each dialect."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str = Field(
        default="sqlite+aiosqlite:///./var/propintel.sqlite3", alias="DATABASE_URL"
    )
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    """`redis://` or, for TLS, `rediss://host:port/db?ssl_ca_certs=/path/ca.pem`."""
    profile: Profile = Field(default=Profile.DEV, alias="PROPINTEL_PROFILE")
    data_dir: Path | None = Field(default_factory=_default_data_dir, alias="PROPINTEL_DATA_DIR")
    initial_load: InitialLoad = Field(default=InitialLoad.RECENT, alias="PROPINTEL_INITIAL_LOAD")
    recent_years: int = Field(default=2, ge=1, le=24, alias="PROPINTEL_RECENT_YEARS")
    max_page_size: int = Field(default=100, ge=1, le=1000, alias="PROPINTEL_MAX_PAGE_SIZE")
    db_pool_size: int = Field(default=10, ge=1, le=200, alias="PROPINTEL_DB_POOL_SIZE")
    compiled_execution: bool = Field(default=True, alias="PROPINTEL_COMPILED_EXECUTION")
    """Run query documents through compiled plans (app/graphql); off = the standard executor
    only (tests compare the two)."""
    db_statement_timeout_ms: int = Field(
        default=5000, ge=100, le=600_000, alias="PROPINTEL_DB_STATEMENT_TIMEOUT_MS"
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0, le=300, alias="PROPINTEL_REQUEST_TIMEOUT_S"
    )
    """Every call made for one request (and its retries) fits in this."""
    db_timeout_s: float = Field(default=2.0, gt=0, le=300, alias="PROPINTEL_DB_TIMEOUT_S")
    redis_timeout_s: float = Field(default=0.25, gt=0, le=60, alias="PROPINTEL_REDIS_TIMEOUT_S")
    resilience_postgresql: DependencyOverrides = Field(
        default_factory=DependencyOverrides, alias="PROPINTEL_RESILIENCE_POSTGRESQL"
    )
    resilience_redis: DependencyOverrides = Field(
        default_factory=DependencyOverrides, alias="PROPINTEL_RESILIENCE_REDIS"
    )
    cache_enabled: bool = Field(default=True, alias="PROPINTEL_CACHE_ENABLED")
    """Off: no entity cache, no operation cache (the bench's uncached runs)."""
    cache_namespace: str = Field(
        default="pi", pattern=r"^[A-Za-z0-9_-]{1,32}$", alias="PROPINTEL_CACHE_NAMESPACE"
    )
    """Prefix of every Redis key and of the invalidation channel."""
    cache_l1_max_entries: int = Field(
        default=50_000, ge=100, le=10_000_000, alias="PROPINTEL_CACHE_L1_MAX_ENTRIES"
    )
    cache_ttl_list_s: float = Field(default=300, gt=0, alias="PROPINTEL_CACHE_TTL_LIST_S")
    cache_ttl_property_s: float = Field(default=3600, gt=0, alias="PROPINTEL_CACHE_TTL_PROPERTY_S")
    cache_ttl_history_s: float = Field(default=3600, gt=0, alias="PROPINTEL_CACHE_TTL_HISTORY_S")
    cache_ttl_stats_s: float = Field(default=3600, gt=0, alias="PROPINTEL_CACHE_TTL_STATS_S")
    cache_ttl_static_s: float = Field(
        default=7 * 24 * 3600, gt=0, alias="PROPINTEL_CACHE_TTL_STATIC_S"
    )
    cache_ttl_estimate_s: float = Field(default=3600, gt=0, alias="PROPINTEL_CACHE_TTL_ESTIMATE_S")
    cache_ttl_operation_s: float = Field(default=300, gt=0, alias="PROPINTEL_CACHE_TTL_OPERATION_S")
    cache_stale_if_error_s: float = Field(
        default=600, ge=0, le=86_400, alias="PROPINTEL_CACHE_STALE_IF_ERROR_S"
    )
    """How long past its TTL a cached value may still be served while its source is down."""
    cache_warm_localities: int = Field(default=20, ge=0, le=1000, alias="PROPINTEL_CACHE_WARM")
    """How many of the busiest localities to warm at startup (0: none)."""
    train_on_start: bool = Field(default=True, alias="PROPINTEL_TRAIN_ON_START")
    """With no price model in the registry, train one in the background at startup (a worker
    process; estimates answer SERVICE_UNAVAILABLE until it is done)."""
    model_poll_s: float = Field(default=15, gt=0, le=3600, alias="PROPINTEL_MODEL_POLL_S")
    """How often each process checks which price model is active."""
    admin_api_key: SecretStr | None = Field(default=None, alias="ADMIN_API_KEY")
    """Bootstrap key: only creates (or promotes) an ADMIN account (`bootstrapAdmin`)."""
    jwt_secret: SecretStr | None = Field(default=None, alias="JWT_SECRET")
    """HS256 key of access tokens; unset outside prod: a random key per process (tokens do
    not survive a restart and are not shared between processes)."""
    access_token_ttl_s: int = Field(default=900, ge=30, le=86_400, alias="PROPINTEL_ACCESS_TTL_S")
    refresh_token_ttl_s: int = Field(
        default=30 * 86_400, ge=300, le=366 * 86_400, alias="PROPINTEL_REFRESH_TTL_S"
    )
    rate_limit_enabled: bool = Field(default=True, alias="PROPINTEL_RATE_LIMIT_ENABLED")
    rate_limit_anonymous: RateLimit = Field(default="300/minute", alias="RATE_LIMIT_ANONYMOUS")
    rate_limit_user: RateLimit = Field(default="1200/minute", alias="RATE_LIMIT_USER")
    rate_limit_admin: RateLimit = Field(default="6000/minute", alias="RATE_LIMIT_ADMIN")
    trusted_proxies: int = Field(default=0, ge=0, le=5, alias="PROPINTEL_TRUSTED_PROXIES")
    """How many reverse proxies append to X-Forwarded-For in front of this service (0: the
    socket's peer is the client). Anonymous clients are rate limited by this address."""
    query_limits_anonymous: AnonymousLimits = Field(
        default_factory=lambda: QueryLimits.for_role("anonymous"),
        alias="PROPINTEL_QUERY_LIMITS_ANONYMOUS",
    )
    query_limits_user: UserLimits = Field(
        default_factory=lambda: QueryLimits.for_role("user"), alias="PROPINTEL_QUERY_LIMITS_USER"
    )
    query_limits_admin: AdminLimits = Field(
        default_factory=lambda: QueryLimits.for_role("admin"),
        alias="PROPINTEL_QUERY_LIMITS_ADMIN",
    )
    docs_url: str | None = Field(default=None, alias="PROPINTEL_DOCS_URL")
    """Where the API's documentation lives: `/` links to it in its JSON answer to API clients
    (a browser asking for text/html gets the web app)."""
    db_sslmode: DbSslMode | None = Field(default=None, alias="PROPINTEL_DB_SSLMODE")
    """PostgreSQL TLS, as libpq's sslmode; also settable as `?sslmode=` in DATABASE_URL."""
    db_sslrootcert: Path | None = Field(default=None, alias="PROPINTEL_DB_SSLROOTCERT")
    """CA bundle for verify-ca / verify-full (default: the system's trust store)."""
    # Background jobs (issue 14).
    worker_enabled: bool = Field(default=True, alias="PROPINTEL_WORKER")
    """`propintel serve` runs a job worker in its own process unless this is false (then run
    `propintel worker`). The embedded SQLite default needs it (one writer)."""
    worker_concurrency: int = Field(default=16, ge=1, le=512, alias="PROPINTEL_WORKER_CONCURRENCY")
    worker_poll_s: float = Field(default=1.0, gt=0, le=60, alias="PROPINTEL_WORKER_POLL_S")
    """How often a worker looks for due jobs without a notification (PostgreSQL NOTIFY wakes
    it at once; SQLite has no notifications)."""
    job_lease_s: float = Field(default=60, ge=1, le=3600, alias="PROPINTEL_JOB_LEASE_S")
    """How long a claimed job is a worker's before another may take it (extended while it
    runs): the most a killed worker's jobs wait."""
    # Webhooks (issue 14).
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="PROPINTEL_WEBHOOK_ALLOWED_HOSTS"
    )
    """Hosts (comma-separated) a webhook may target even though they resolve to a private,
    loopback or link-local address (an internal receiver)."""
    webhook_timeout_s: float = Field(default=15, gt=0, le=60, alias="PROPINTEL_WEBHOOK_TIMEOUT_S")
    webhook_endpoint_concurrency: int = Field(
        default=4, ge=1, le=100, alias="PROPINTEL_WEBHOOK_ENDPOINT_CONCURRENCY"
    )
    """Deliveries in flight to one endpoint from one worker process."""
    webhook_retention_days: float = Field(
        default=7, gt=0, le=3650, alias="PROPINTEL_WEBHOOK_RETENTION_DAYS"
    )
    """Succeeded deliveries (and their attempts) are purged after this many days."""
    webhook_failed_retention_days: float = Field(
        default=30, gt=0, le=3650, alias="PROPINTEL_WEBHOOK_FAILED_RETENTION_DAYS"
    )
    max_webhook_endpoints: int = Field(default=10, ge=1, le=1000, alias="PROPINTEL_MAX_WEBHOOKS")
    """Per user."""
    # Saved searches and watches (issue 14), per user.
    max_saved_searches: int = Field(
        default=50, ge=1, le=10_000, alias="PROPINTEL_MAX_SAVED_SEARCHES"
    )
    max_watches: int = Field(default=200, ge=1, le=100_000, alias="PROPINTEL_MAX_WATCHES")
    subscription_poll_s: float = Field(
        default=2.0, gt=0, le=60, alias="PROPINTEL_SUBSCRIPTION_POLL_S"
    )
    """How often a subscription checks for alerts itself while the broker (Redis pub/sub) is
    unreachable."""
    # Observability (issue 15).
    metrics_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"], alias="PROPINTEL_METRICS_ALLOW"
    )
    """Networks (comma-separated CIDRs) that may read /metrics in prod without the token."""
    metrics_token: SecretStr | None = Field(default=None, alias="PROPINTEL_METRICS_TOKEN")
    """`Authorization: Bearer <token>` also opens /metrics in prod (a scraper elsewhere)."""
    metrics_operations: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="PROPINTEL_METRICS_OPERATIONS"
    )
    """Operation names (comma-separated) that metrics name, beside the built-in ones of
    app/telemetry/operations.py; any other operation is counted as `other`."""
    worker_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, alias="PROPINTEL_WORKER_METRICS_PORT"
    )
    """`propintel worker` serves its own /metrics on this port (unset: none). The API's
    /metrics sums its workers, not these separate processes; scrape both."""
    worker_metrics_host: str = Field(default="127.0.0.1", alias="PROPINTEL_WORKER_METRICS_HOST")
    """Where `propintel worker` listens for scrapes (0.0.0.0 in a container): no access
    control there, so keep it on a private network."""
    log_format: str | None = Field(
        default=None, pattern="^(json|console)$", alias="PROPINTEL_LOG_FORMAT"
    )
    """json (default in prod) or console (default elsewhere)."""
    log_level: str = Field(
        default="info",
        pattern="^(trace|debug|info|warning|error|critical)$",
        alias="PROPINTEL_LOG_LEVEL",
    )
    """The least severe level logged (`propintel serve --log-level` sets it for its workers)."""
    otel_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    """Traces are exported over OTLP/HTTP to this endpoint; unset: tracing is off (and free)."""
    otel_service_name: str = Field(default="propintel", alias="OTEL_SERVICE_NAME")
    otel_include_document: bool = Field(default=False, alias="PROPINTEL_OTEL_INCLUDE_DOCUMENT")
    """Put the GraphQL document in spans (`graphql.document`): off by default, since documents
    can carry literals a caller typed."""

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip().lower() for host in value.split(",") if host.strip()]
        return value

    @field_validator("metrics_allow", "metrics_operations", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("metrics_allow")
    @classmethod
    def _networks_parse(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"PROPINTEL_METRICS_ALLOW: {network!r} is not a network (e.g. 10.0.0.0/8)"
                ) from None
        return value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError("PROPINTEL_METRICS_TOKEN must be at least 16 characters")
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        value = normalise_database_url(value)
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError(
                "DATABASE_URL must be a postgresql:// or sqlite:/// URL, got " + repr(value)
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _empty_redis_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _resilience_policies_are_valid(self) -> Settings:
        # Overrides combine with the profile's policy; the result must be coherent too.
        dependency_configs(self)
        return self

    @field_validator("admin_api_key")
    @classmethod
    def _admin_key_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError("ADMIN_API_KEY must be at least 16 characters")
        if looks_like_placeholder(value.get_secret_value()):
            raise ValueError("ADMIN_API_KEY is a placeholder; generate one (openssl rand -hex 24)")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _jwt_secret_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 32:
            raise ValueError("JWT_SECRET must be at least 32 characters")
        if looks_like_placeholder(value.get_secret_value()):
            raise ValueError("JWT_SECRET is a placeholder; generate one (openssl rand -hex 32)")
        return value

    @model_validator(mode="after")
    def _prod_has_its_secrets(self) -> Settings:
        if self.profile is Profile.PROD:
            missing = [
                name
                for name, value in (
                    ("JWT_SECRET", self.jwt_secret),
                    ("ADMIN_API_KEY", self.admin_api_key),
                )
                if value is None
            ]
            if missing:
                raise ValueError(
                    "the prod profile needs " + " and ".join(missing) + " (no defaults in prod)"
                )
        return self

    @property
    def cache_ttls(self) -> Ttls:
        return Ttls(
            list=self.cache_ttl_list_s,
            property=self.cache_ttl_property_s,
            history=self.cache_ttl_history_s,
            stats=self.cache_ttl_stats_s,
            static=self.cache_ttl_static_s,
            estimate=self.cache_ttl_estimate_s,
            operation=self.cache_ttl_operation_s,
        )

    @property
    def logs_as_json(self) -> bool:
        if self.log_format is not None:
            return self.log_format == "json"
        return self.profile is Profile.PROD

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def exposes_debug_info(self) -> bool:
        """SQL statement counts in response extensions: useful to developers, noise in prod."""
        return self.profile is not Profile.PROD


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

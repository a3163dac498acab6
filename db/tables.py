"""Table definitions (SQLAlchemy Core). Only db/ builds SQL; everything else asks db/ for rows.

The same metadata serves PostgreSQL and SQLite. Where they differ the column says so with a
variant: ids are INTEGER on SQLite so that they alias the rowid, names sort in the "C"
collation on PostgreSQL so one btree serves both ORDER BY name and LIKE 'PREFIX%'.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Name = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
LIVE = sa.text("deleted_at IS NULL")


class UtcDateTime(sa.TypeDecorator[datetime]):
    """TIMESTAMPTZ that reads back aware on both dialects: SQLite drops the zone, and every
    value here is written in UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


localities = sa.Table(
    "localities",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", Name, nullable=False),
    sa.Column("postcode", sa.Text, nullable=False),
    sa.Column("state", sa.String(3), nullable=False),
    sa.Column("district_code", sa.Text),
    sa.Column("district", sa.Text),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    *_timestamps(),
    # Moves in the transaction of every write that changes the locality's market sales:
    # a `locality_stats_summary` row serves only while its version equals this one.
    sa.Column("stats_version", sa.BigInteger, nullable=False, server_default="0"),
    sa.UniqueConstraint("name", "postcode"),
)

# Each locality's statistics over all its market sales (no window), as of `stats_version`:
# filled by the reads that find it missing or stale (db/repositories/stats.py).
locality_stats_summary = sa.Table(
    "locality_stats_summary",
    metadata,
    sa.Column(
        "locality_id", Id, sa.ForeignKey("localities.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("stats_version", sa.BigInteger, nullable=False),
    sa.Column("sales_count", sa.BigInteger, nullable=False),
    sa.Column("median_price", sa.Float),
    sa.Column("p25_price", sa.Float),
    sa.Column("p75_price", sa.Float),
    sa.Column("median_price_per_m2", sa.Float),
)

properties = sa.Table(
    "properties",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("vg_property_id", sa.Integer, nullable=False),
    # '' for a whole lot, so the natural key (vg_property_id, strata_lot) has no NULL in it.
    sa.Column("strata_lot", sa.Text, nullable=False, server_default=""),
    sa.Column("district_code", sa.Text),
    sa.Column("district", sa.Text),
    sa.Column("property_name", sa.Text),
    sa.Column("unit_number", sa.Text),
    sa.Column("house_number", sa.Text),
    sa.Column("street_name", sa.Text),
    sa.Column("locality_id", Id, sa.ForeignKey("localities.id"), nullable=False),
    sa.Column("postcode", sa.Text, nullable=False),
    sa.Column("area_m2", sa.Float),
    sa.Column("zoning", sa.Text),
    sa.Column("nature", sa.Text),
    sa.Column("primary_purpose", sa.Text),
    sa.Column("is_strata", sa.Boolean, nullable=False),
    # Locality centroid (PSI addresses are not geocoded); copied here so bbox filters use an index.
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    # Denormalised newest sale (same order as Property.sales) so lists sort and filter on it.
    sa.Column("last_sale_price", sa.BigInteger, nullable=False),
    sa.Column("last_sale_date", sa.Date, nullable=False),
    # The VG extract time of the record the address came from: a newer restatement wins.
    sa.Column("source_downloaded_at", sa.DateTime, nullable=False),
    *_timestamps(),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    # The address normalised for search (db/search_key.py; migration 0006).
    sa.Column("search_key", sa.Text),
    sa.UniqueConstraint("vg_property_id", "strata_lot"),
)

sales = sa.Table(
    "sales",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("property_id", Id, sa.ForeignKey("properties.id"), nullable=False),
    # Where the sale was recorded (a property's locality can change after boundary reforms).
    sa.Column("locality_id", Id, sa.ForeignKey("localities.id"), nullable=False),
    sa.Column("is_strata", sa.Boolean, nullable=False),
    sa.Column("district_code", sa.Text, nullable=False),
    sa.Column("contract_date", sa.Date, nullable=False),
    sa.Column("settlement_date", sa.Date),
    sa.Column("price", sa.BigInteger, nullable=False),
    sa.Column("dealing_number", sa.Text, nullable=False),
    sa.Column("sale_code", sa.Text),
    sa.Column("interest_pct", sa.Float, nullable=False),
    sa.Column("area_m2", sa.Float),
    sa.Column("zoning", sa.Text),
    sa.Column("nature", sa.Text),
    sa.Column("primary_purpose", sa.Text),
    sa.Column("parcels_in_sale", sa.Integer, nullable=False),
    sa.Column("is_market_sale", sa.Boolean, nullable=False),
    # Comma-separated NonMarketReason names; '' for a market sale.
    sa.Column("non_market_reasons", sa.Text, nullable=False, server_default=""),
    sa.Column("downloaded_at", sa.DateTime, nullable=False),
    sa.Column("source_file", sa.Text, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.UniqueConstraint("property_id", "dealing_number"),
)

listings = sa.Table(
    "listings",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("property_id", Id, sa.ForeignKey("properties.id"), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("asking_price", sa.BigInteger),
    sa.Column("listed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint(
        "status IN ('ACTIVE', 'UNDER_OFFER', 'SOLD', 'WITHDRAWN')", name="ck_listings_status"
    ),
)

ingested_files = sa.Table(
    "ingested_files",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("rows_read", sa.Integer, nullable=False),
    sa.Column("rows_rejected", sa.Integer, nullable=False),
    sa.Column(
        "loaded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.UniqueConstraint("sha256"),
)


# Accounts. Refresh tokens and API keys are stored as SHA-256 digests of high-entropy secrets
# (a digest is enough: they cannot be guessed, unlike passwords, which get argon2id).
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.String(16), nullable=False, server_default="USER"),
    sa.Column("disabled_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("email"),
    sa.CheckConstraint("role IN ('USER', 'ADMIN')", name="ck_users_role"),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # Every token rotated from one login; presenting a rotated one again revokes them all.
    sa.Column("family", sa.String(32), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("rotated_at", UtcDateTime),
    sa.Column("revoked_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("token_hash"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    # Shown in listings so an owner can tell keys apart; not enough to use one.
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("revoked_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("key_hash"),
)


# The price model registry: every trained model with its validation metrics and artifact
# (a pickle of app.ml.PriceModel: written and read only by this service).
price_models = sa.Table(
    "price_models",
    metadata,
    sa.Column("version", Id, primary_key=True),
    sa.Column("trained_at", UtcDateTime, nullable=False),
    sa.Column("data_from", sa.Date, nullable=False),
    sa.Column("data_to", sa.Date, nullable=False),
    sa.Column("features", sa.Text, nullable=False),  # JSON list
    sa.Column("metrics", sa.Text, nullable=False),  # JSON object
    sa.Column("training_seconds", sa.Float, nullable=False),
    sa.Column("artifact", sa.LargeBinary, nullable=False),
    sa.Column("artifact_sha256", sa.String(64), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.false()),
)

training_jobs = sa.Table(
    "training_jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("activate", sa.Boolean, nullable=False),
    sa.Column("requested_by", Id),
    sa.Column("created_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("started_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("model_version", Id),
    sa.Column("error", sa.Text),
    sa.Column("running_lock", sa.String(8)),  # one job at a time: see migration 0003
    sa.UniqueConstraint("running_lock"),
    sa.CheckConstraint(
        "status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED')", name="ck_training_jobs_status"
    ),
)


# Indexes that serve the keyset queries in db/repositories (each matches one ORDER BY).
sa.Index(
    "ix_properties_locality_id",
    properties.c.locality_id,
    properties.c.id,
    postgresql_where=LIVE,
    sqlite_where=LIVE,
)
sa.Index(
    "ix_properties_locality_price",
    properties.c.locality_id,
    properties.c.last_sale_price,
    properties.c.id,
    postgresql_where=LIVE,
    sqlite_where=LIVE,
)
sa.Index(
    "ix_properties_locality_date",
    properties.c.locality_id,
    properties.c.last_sale_date,
    properties.c.id,
    postgresql_where=LIVE,
    sqlite_where=LIVE,
)
sa.Index(
    "ix_properties_price",
    properties.c.last_sale_price,
    properties.c.id,
    postgresql_where=LIVE,
    sqlite_where=LIVE,
)
sa.Index(
    "ix_properties_date",
    properties.c.last_sale_date,
    properties.c.id,
    postgresql_where=LIVE,
    sqlite_where=LIVE,
)
sa.Index(
    "ix_properties_lat_lon",
    properties.c.latitude,
    properties.c.longitude,
    postgresql_where=LIVE,
    sqlite_where=LIVE,
)
# Address search (migration 0006): PostgreSQL only (SQLite searches an FTS5 table); declared
# here so the ingest drops it for a first load and rebuilds it after, as the others.
sa.Index(
    "ix_properties_search",
    sa.text("to_tsvector('simple'::regconfig, search_key)"),
    postgresql_using="gin",
    postgresql_where=LIVE,
    _table=properties,
).ddl_if(dialect="postgresql")
sa.Index(
    "ix_sales_property_newest", sales.c.property_id, sales.c.contract_date.desc(), sales.c.id.desc()
)
sa.Index(
    "ix_sales_locality_market",
    sales.c.locality_id,
    sales.c.contract_date,
    postgresql_where=sales.c.is_market_sale,
    sqlite_where=sales.c.is_market_sale,
    postgresql_include=["price", "area_m2", "is_strata"],
)
sa.Index(
    "ix_listings_property",
    listings.c.property_id,
    listings.c.listed_at.desc(),
    listings.c.id.desc(),
)
sa.Index("ix_refresh_tokens_user_id", refresh_tokens.c.user_id)
sa.Index("ix_refresh_tokens_family", refresh_tokens.c.family)
sa.Index("ix_api_keys_user_id", api_keys.c.user_id, api_keys.c.id)
sa.Index(
    "ix_price_models_active",
    price_models.c.active,
    unique=True,
    postgresql_where=price_models.c.active,
    sqlite_where=price_models.c.active,
)


# Alerts (issue 14): what people follow, and what they are told. Every row belongs to a user
# (row-level security on PostgreSQL, migration 0004). Times are written by the service in UTC.
saved_searches = sa.Table(
    "saved_searches",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("frequency", sa.String(8), nullable=False),
    sa.Column("filter", sa.Text, nullable=False),  # JSON: the filter as the user gave it
    # The filter as columns, so that matching is one set-based join. `anchor` is the most
    # selective place the filter names ('L:<LOCALITY>', 'P:<postcode>', 'D:<DISTRICT>' or 'B'
    # for a bounding box only): a sale is compared only with the searches of its own places.
    sa.Column("anchor", sa.Text, nullable=False),
    sa.Column("locality_name", sa.Text),  # upper case
    sa.Column("postcode", sa.Text),
    sa.Column("district", sa.Text),  # upper case
    sa.Column("is_strata", sa.Boolean),
    sa.Column("nature", sa.Text),
    sa.Column("min_area_m2", sa.Float),
    sa.Column("max_area_m2", sa.Float),
    sa.Column("min_price", sa.BigInteger),
    sa.Column("max_price", sa.BigInteger),
    sa.Column("sold_after", sa.Date),
    sa.Column("sold_before", sa.Date),
    sa.Column("min_lat", sa.Float),
    sa.Column("min_lon", sa.Float),
    sa.Column("max_lat", sa.Float),
    sa.Column("max_lon", sa.Float),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("last_matched_at", UtcDateTime),
    sa.CheckConstraint(
        "frequency IN ('INSTANT', 'DAILY', 'WEEKLY')", name="ck_saved_searches_frequency"
    ),
)

# Matches of DAILY and WEEKLY searches, gathered into one DIGEST alert per period.
saved_search_matches = sa.Table(
    "saved_search_matches",
    metadata,
    sa.Column(
        "saved_search_id",
        Id,
        sa.ForeignKey("saved_searches.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("sale_id", Id, sa.ForeignKey("sales.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("matched_at", UtcDateTime, nullable=False),
)

watches = sa.Table(
    "watches",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("property_id", Id, sa.ForeignKey("properties.id"), nullable=False),
    sa.Column("estimate_change_pct", sa.Float, nullable=False),
    # The estimate the next change is measured from (set when first estimated, moved by
    # each ESTIMATE_CHANGED alert), and the model version the watch was last checked with
    # (app/estimates/watches.py: a check under the threshold keeps the baseline, so slow
    # drifts add up, but records the version so a model activation checks each watch once).
    sa.Column("baseline_estimate", sa.BigInteger),
    sa.Column("baseline_model_version", Id),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("user_id", "property_id"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("read_at", UtcDateTime),
    sa.Column("saved_search_id", Id, sa.ForeignKey("saved_searches.id", ondelete="SET NULL")),
    sa.Column("watch_id", Id, sa.ForeignKey("watches.id", ondelete="SET NULL")),
    sa.Column("property_id", Id, sa.ForeignKey("properties.id")),
    sa.Column("sale_id", Id, sa.ForeignKey("sales.id")),
    sa.Column("data", sa.Text),  # JSON: a digest's matches, an estimate's change
    # What makes an alert happen once: 'S:<search>:<sale>', 'W:<watch>:<sale>',
    # 'E:<watch>:<cause>', 'D:<search>:<period>'. Matching inserts ON CONFLICT DO NOTHING.
    sa.Column("dedupe_key", sa.Text, nullable=False),
    sa.UniqueConstraint("dedupe_key"),
    sa.CheckConstraint(
        "kind IN ('SALE_MATCHED', 'PROPERTY_SOLD', 'ESTIMATE_CHANGED', 'DIGEST')",
        name="ck_alerts_kind",
    ),
)

# Webhooks (issue 14): endpoints, one delivery per (endpoint, alert), every attempt.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),  # comma-separated AlertKind names
    # Signing secrets (whsec_...). They must be usable to sign, so they are stored, not
    # hashed; the previous one keeps signing until previous_secret_expires_at.
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("previous_secret", sa.Text),
    sa.Column("previous_secret_expires_at", UtcDateTime),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("failing_since", UtcDateTime),  # first failure since the last success
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("status IN ('ACTIVE', 'DISABLED')", name="ck_webhook_endpoints_status"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column(
        "endpoint_id", Id, sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("alert_id", Id, sa.ForeignKey("alerts.id", ondelete="SET NULL")),
    sa.Column("message_id", sa.String(64), nullable=False),  # webhook-id: same on every retry
    sa.Column("event_type", sa.String(32), nullable=False),  # sale.matched, ...
    sa.Column("payload", sa.Text),  # the exact body (made by the first attempt): retries match
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempt_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("message_id"),
    sa.UniqueConstraint("endpoint_id", "alert_id"),
    sa.CheckConstraint(
        "status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'DEAD', 'CANCELLED')",
        name="ck_webhook_deliveries_status",
    ),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column(
        "delivery_id",
        Id,
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("attempted_at", UtcDateTime, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
)

# The job queue (issue 14): the transactional outbox and the work queue in one table. A write
# inserts its job in its own transaction; workers claim due jobs (FOR UPDATE SKIP LOCKED on
# PostgreSQL) under a lease that a dead worker's jobs outlive only until it expires.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON object
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_at", UtcDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("locked_by", sa.String(64)),
    sa.Column("lease_expires_at", UtcDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("dedupe_key", sa.Text),  # at most one job per key (periodic runs, retrains)
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("started_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
    sa.UniqueConstraint("dedupe_key"),
    sa.CheckConstraint(
        "status IN ('QUEUED', 'RUNNING', 'RETRYING', 'SUCCEEDED', 'DEAD')", name="ck_jobs_status"
    ),
)

# One row per (periodic task, period): whoever inserts it runs the period, once.
periodic_runs = sa.Table(
    "periodic_runs",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(32), primary_key=True),
    sa.Column("claimed_at", UtcDateTime, nullable=False),
)

job_workers = sa.Table(
    "job_workers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("hostname", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("heartbeat_at", UtcDateTime, nullable=False),
)

sa.Index("ix_saved_searches_user_id", saved_searches.c.user_id, saved_searches.c.id)
sa.Index("ix_saved_searches_anchor", saved_searches.c.anchor)
sa.Index("ix_saved_search_matches_matched_at", saved_search_matches.c.matched_at)
sa.Index("ix_watches_property_id", watches.c.property_id)
# The model-activation check finds watches not yet checked with the active model.
sa.Index("ix_watches_baseline_model_version", watches.c.baseline_model_version)
sa.Index("ix_alerts_user_id", alerts.c.user_id, alerts.c.id)
sa.Index(
    "ix_alerts_user_unread",
    alerts.c.user_id,
    alerts.c.id,
    postgresql_where=alerts.c.read_at.is_(None),
    sqlite_where=alerts.c.read_at.is_(None),
)
sa.Index("ix_webhook_endpoints_user_id", webhook_endpoints.c.user_id, webhook_endpoints.c.id)
sa.Index(
    "ix_webhook_deliveries_endpoint", webhook_deliveries.c.endpoint_id, webhook_deliveries.c.id
)
sa.Index(
    "ix_webhook_deliveries_status", webhook_deliveries.c.status, webhook_deliveries.c.updated_at
)
sa.Index("ix_webhook_attempts_delivery", webhook_attempts.c.delivery_id, webhook_attempts.c.id)
sa.Index(
    "ix_jobs_due",
    jobs.c.run_at,
    postgresql_where=jobs.c.status.in_(["QUEUED", "RETRYING"]),
    sqlite_where=jobs.c.status.in_(["QUEUED", "RETRYING"]),
)
sa.Index(
    "ix_jobs_leased",
    jobs.c.lease_expires_at,
    postgresql_where=jobs.c.status == "RUNNING",
    sqlite_where=jobs.c.status == "RUNNING",
)
sa.Index("ix_jobs_finished", jobs.c.status, jobs.c.finished_at)

"""The GraphQL schema: Query and the extensions every operation runs with."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

import strawberry
from graphql import validate
from strawberry.extensions import (
    AddValidationRules,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from app.settings.query_limits import MAX_VALIDATION_ERRORS
from db.records import LocalityRecord, Page, PropertyRecord, SaleRecord
from resolvers import accounts, estimates, localities, mutations, node, properties
from resolvers import admin as admin_resolvers
from resolvers import alerts as alert_resolvers
from resolvers import insights as insight_resolvers
from resolvers import jobs as job_resolvers
from resolvers import search as search_resolvers
from resolvers import webhooks as webhook_resolvers
from schema.accounts import ApiKeyType, AuthPayload, CreatedApiKey, UserType
from schema.admin import CacheStats, DependencyStatus, InvalidationResult, WarmResult
from schema.alerts import SavedSearch, Watch
from schema.errors import PropintelSchema
from schema.estimates import PriceEstimate, PriceModelType, TrainingJob
from schema.extensions import SqlStatementCount
from schema.inputs import RecordSaleInput, UpdatePropertyInput  # noqa: F401 (schema types)
from schema.insights import DatabaseInsights, ExplainedOperation
from schema.introspection import NoSchemaIntrospection
from schema.jobs import JobQueue
from schema.search import AddressMatch, LocalityMatch
from schema.subscriptions import Subscription
from schema.types import Locality, LocalityConnection, Node, Property, PropertyConnection, Sale
from schema.webhooks import WebhookDelivery, WebhookEndpoint, WebhookEndpointSecret


@strawberry.type
class Query:
    property: PropertyRecord | None = strawberry.field(
        resolver=properties.property_by_id,
        graphql_type=Property | None,
        description="The property with this id (`Property.id`); null when there is no such "
        "property (never was, or removed). An id that is not a property's is BAD_USER_INPUT.",
    )
    node: PropertyRecord | SaleRecord | LocalityRecord | None = strawberry.field(
        resolver=node.node,
        graphql_type=Node | None,
        description="The property, sale or locality with this id; null when there is no "
        "such object (never was, or removed). An id this API did not issue is BAD_USER_INPUT.",
    )
    properties: Page[PropertyRecord] = strawberry.field(
        resolver=properties.properties, graphql_type=PropertyConnection
    )
    locality: LocalityRecord | None = strawberry.field(
        resolver=localities.locality_by_name,
        graphql_type=Locality | None,
        description="The locality (suburb) with this name and postcode, e.g. "
        '`locality(name: "Newtown", postcode: "2042")`; null when there is no such locality '
        "(no sale was ever recorded under that name and postcode; `localities(search:)` "
        "lists the names).",
    )
    localities: Page[LocalityRecord] = strawberry.field(
        resolver=localities.localities, graphql_type=LocalityConnection
    )
    search_addresses: list[object] = strawberry.field(
        resolver=search_resolvers.search_addresses,
        graphql_type=list[AddressMatch],
        description="Properties whose address matches what was typed so far, best first: "
        "the last word may be partial; case, punctuation, unit forms ('2/73', 'unit 2 73', "
        "'u2 73'), street type spellings (Ave/Avenue, St/Street, ...) and one typo per word "
        "do not matter; locality and postcode are optional. A ranked top-N (`first`, at most "
        "20), not a connection: a ranking has no stable order to page through.",
    )
    suggest_localities: list[object] = strawberry.field(
        resolver=search_resolvers.suggest_localities,
        graphql_type=list[LocalityMatch],
        description="Localities (suburbs) whose name or postcode matches what was typed so "
        "far, best first (as searchAddresses).",
    )
    cache_stats: object = strawberry.field(
        resolver=admin_resolvers.cache_stats,
        graphql_type=CacheStats,
        description="Cache counters per tier and resource type (admin).",
    )
    resilience_status: object = strawberry.field(
        resolver=admin_resolvers.resilience_status,
        graphql_type=list[DependencyStatus],
        description="Circuit breakers, bulkheads, retries and timeouts per dependency (admin).",
    )
    estimate_price: PriceEstimate = strawberry.field(
        resolver=estimates.estimate_price,
        description="An estimate for a property we do not hold, from its features.",
    )
    models: list[PriceModelType] = strawberry.field(
        resolver=estimates.models, description="The price model registry, newest first (admin)."
    )
    model_training_status: TrainingJob = strawberry.field(
        resolver=estimates.model_training_status, description="A training job (admin)."
    )
    me: UserType | None = strawberry.field(
        resolver=accounts.me, description="The signed-in account; null when anonymous."
    )
    api_keys: list[ApiKeyType] = strawberry.field(
        resolver=accounts.api_keys, description="Your API keys, revoked ones included."
    )
    job_queue: object = strawberry.field(
        resolver=job_resolvers.job_queue,
        graphql_type=JobQueue,
        description="The job queue: jobs by state, the oldest due job's wait, live workers "
        "(admin).",
    )
    database_insights: object = strawberry.field(
        resolver=insight_resolvers.database_insights,
        graphql_type=DatabaseInsights,
        description="The database advisor: slow statements, unused and duplicate indexes, "
        "index suggestions, maintenance (PostgreSQL; admin).",
    )
    explain_operation: object = strawberry.field(
        resolver=insight_resolvers.explain_operation,
        graphql_type=ExplainedOperation,
        description="The SQL statements a query operation runs and their plans (admin).",
    )


@strawberry.type
class Mutation:
    record_sale: SaleRecord = strawberry.field(
        resolver=mutations.record_sale,
        graphql_type=Sale,
        description="Adds a sale; the property's last sale, its locality's statistics and "
        "every cached list or response containing them change at once (admin).",
    )
    update_property: PropertyRecord = strawberry.field(
        resolver=mutations.update_property,
        graphql_type=Property,
        description="Corrects a property's descriptive fields (admin).",
    )
    invalidate_cache: object = strawberry.field(
        resolver=admin_resolvers.invalidate_cache, graphql_type=InvalidationResult
    )
    warm_cache: object = strawberry.field(
        resolver=admin_resolvers.warm_cache,
        graphql_type=WarmResult,
        description="Loads localities (default: the busiest) into the cache (admin).",
    )
    retrain_model: TrainingJob = strawberry.field(
        resolver=estimates.retrain_model,
        description="Trains a price model in a worker process; returns the job at once "
        "(poll modelTrainingStatus). With activate (default) it serves once trained (admin).",
    )
    activate_model: PriceModelType = strawberry.field(
        resolver=estimates.activate_model, description="Serves this model version (admin)."
    )
    register: UserType = strawberry.field(
        resolver=accounts.register,
        description="Creates a USER account (password: 10 to 256 characters).",
    )
    login: AuthPayload = strawberry.field(resolver=accounts.login)
    refresh_token: AuthPayload = strawberry.field(
        resolver=accounts.refresh_token,
        description="Spends a refresh token for a new token pair. A token spent twice "
        "revokes its whole session.",
    )
    logout: int = strawberry.field(resolver=accounts.logout)
    create_api_key: CreatedApiKey = strawberry.field(resolver=accounts.create_api_key)
    revoke_api_key: ApiKeyType = strawberry.field(resolver=accounts.revoke_api_key)
    bootstrap_admin: UserType = strawberry.field(
        resolver=accounts.bootstrap_admin,
        description="Creates (or promotes) an ADMIN account; needs the ADMIN_API_KEY.",
    )
    set_user_role: UserType = strawberry.field(resolver=accounts.set_user_role)
    # Saved searches, watches and alerts (issue 14): the caller's own.
    create_saved_search: object = strawberry.field(
        resolver=alert_resolvers.create_saved_search,
        graphql_type=SavedSearch,
        description="Saves a filter that alerts you to new sales matching it (at most "
        "PROPINTEL_MAX_SAVED_SEARCHES per user; the filter must name a place).",
    )
    update_saved_search: object = strawberry.field(
        resolver=alert_resolvers.update_saved_search, graphql_type=SavedSearch
    )
    delete_saved_search: bool = strawberry.field(resolver=alert_resolvers.delete_saved_search)
    watch_property: object = strawberry.field(
        resolver=alert_resolvers.watch_property,
        graphql_type=Watch,
        description="Watches a property: PROPERTY_SOLD when it sells, ESTIMATE_CHANGED when "
        "its estimate moves by more than estimateChangePct percent (above 0, at most 100). "
        "Again: sets the threshold.",
    )
    unwatch_property: bool = strawberry.field(
        resolver=alert_resolvers.unwatch_property,
        description="Stops watching; false when it was not watched.",
    )
    mark_alerts_read: int = strawberry.field(
        resolver=alert_resolvers.mark_alerts_read,
        description="Marks the alerts of `ids` (or all of yours with `all: true`) read; "
        "returns how many were unread.",
    )
    # Webhooks (issue 14): the caller's own endpoints and deliveries.
    create_webhook_endpoint: object = strawberry.field(
        resolver=webhook_resolvers.create_webhook_endpoint,
        graphql_type=WebhookEndpointSecret,
        description="Registers a URL for signed webhooks of these alert kinds; the signing "
        "secret is in this answer only.",
    )
    rotate_webhook_secret: object = strawberry.field(
        resolver=webhook_resolvers.rotate_webhook_secret,
        graphql_type=WebhookEndpointSecret,
        description="A new signing secret (in this answer only); the old one keeps signing "
        "too for 24 hours (both signatures in `webhook-signature`).",
    )
    delete_webhook_endpoint: bool = strawberry.field(
        resolver=webhook_resolvers.delete_webhook_endpoint,
        description="Deletes the endpoint and its deliveries.",
    )
    enable_webhook_endpoint: object = strawberry.field(
        resolver=webhook_resolvers.enable_webhook_endpoint,
        graphql_type=WebhookEndpoint,
        description="Turns a DISABLED endpoint back on (then recoverWebhookDeliveries sends "
        "what it missed).",
    )
    replay_webhook_delivery: object = strawberry.field(
        resolver=webhook_resolvers.replay_webhook_delivery,
        graphql_type=WebhookDelivery,
        description="Sends a delivery again, whatever its state (same webhook-id and body).",
    )
    recover_webhook_deliveries: int = strawberry.field(
        resolver=webhook_resolvers.recover_webhook_deliveries,
        description="Replays every FAILED or DEAD delivery of the endpoint created since "
        "`since`; returns how many.",
    )


@cache
def _bounded_validation(maxsize: int) -> Callable[..., Any]:
    @lru_cache(maxsize=maxsize)
    def validate_document(schema: Any, document: Any, rules: tuple[Any, ...]) -> Any:
        # Strawberry's validate_document, with graphql-core's bound on errors.
        rules = (*rules, MaybeNullValidationRule, OneOfInputValidationRule)
        return validate(schema, document, rules, max_errors=MAX_VALIDATION_ERRORS)

    return validate_document


class BoundedValidationCache(ValidationCache):
    """Strawberry's ValidationCache, stopping at MAX_VALIDATION_ERRORS errors (then one saying
    so): a document's mistakes cannot fill its answer. Compiled plans never report
    validation errors (they leave such documents to Strawberry), so both executors agree."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.cached_validate_document = _bounded_validation(maxsize)


def build_schema(
    *,
    count_statements: bool,
    production: bool = False,
    max_batch: int = 1,
    query: type[Query] = Query,
) -> strawberry.Schema:
    """`production`: no introspection, no field suggestions. `max_batch`: the most operations
    one request may carry (the gate enforces each role's own limit below it). `query`: a
    subclass of Query with fields of its own (tests of what the executors do with them)."""
    # Clients send the same few documents over and over: parse and validate each once
    # (the caches live at module level; these factories only look them up).
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: ParserCache(maxsize=512),
        lambda: BoundedValidationCache(maxsize=512),
    ]
    if production:
        extensions.insert(0, lambda: AddValidationRules([NoSchemaIntrospection]))
    if count_statements:
        extensions.append(SqlStatementCount)
    return PropintelSchema(
        query=query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Property, Sale, Locality],
        extensions=extensions,
        config=StrawberryConfig(
            disable_field_suggestions=production,
            batching_config={"max_operations": max_batch} if max_batch > 1 else None,
        ),
    )

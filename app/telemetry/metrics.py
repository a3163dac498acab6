"""Every Prometheus metric family of the service, declared once (prometheus-client).

Names are prefixed `propintel_`; labels are bounded by construction: a dependency, a cache
tier and resource, an error code, a role name, a job kind, an outcome from a fixed set, an
operation name from an allow-list (app/telemetry/operations.py). Never a user, a key, an
address, a variable's value or a document.

Served processes run in prometheus-client's multiprocess mode (app/telemetry/multiprocess.py):
each value lives in a memory-mapped file per process, and /metrics adds the files up. Every
gauge has a `live*` mode, so a dead worker's gauges leave the sum once it is marked dead.
This module must therefore be imported only after PROMETHEUS_MULTIPROC_DIR is set (for
`propintel serve` that is the first thing `cmd_serve` does).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: from an L1 hit (~0.3 ms) to the request timeout (10 s)."""
COST_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

# GraphQL over HTTP (and subscriptions: operation_type="subscription").
graphql_requests = Counter(
    "propintel_graphql_requests_total",
    "GraphQL operations answered, by type, allow-listed name and outcome (ok: no errors; "
    "error: an error of ours, e.g. INTERNAL_SERVER_ERROR or SERVICE_UNAVAILABLE; "
    "client_error: errors, all caused by the request; rejected: refused before execution).",
    ["operation_type", "operation", "outcome"],
)
graphql_request_duration = Histogram(
    "propintel_graphql_request_duration_seconds",
    "Time from the request's arrival to the end of its response.",
    ["operation_type", "operation"],
    buckets=LATENCY_BUCKETS,
)
graphql_errors = Counter(
    "propintel_graphql_errors_total", "GraphQL errors in responses, by code.", ["code"]
)
graphql_query_cost = Histogram(
    "propintel_graphql_query_cost",
    "Estimated cost of each operation admitted by the query limits.",
    ["operation_type"],
    buckets=COST_BUCKETS,
)
executor_operations = Counter(
    "propintel_executor_operations_total",
    "Operations by how they ran: compiled (a plan), fallback (a plan handed it to "
    "Strawberry), standard (no plan).",
    ["path"],
)
http_requests = Counter(
    "propintel_http_requests_total",
    "HTTP requests by route and status class.",
    ["route", "status"],
)

# The two-tier cache.
cache_requests = Counter(
    "propintel_cache_requests_total",
    "Cache lookups by tier (l1, l2, operation), resource and result.",
    ["tier", "resource", "result"],
)
cache_entries = Gauge(
    "propintel_cache_entries",
    "Entries held, by tier (l1: summed over live processes).",
    ["tier"],
    multiprocess_mode="livesum",
)
cache_evictions = Counter(
    "propintel_cache_evictions_total",
    "L1 entries dropped, by reason (capacity, invalidation, flush).",
    ["reason"],
)

# Resilience guards (app/resilience), per dependency (postgresql, redis).
breaker_state = Gauge(
    "propintel_breaker_state",
    "1 for the circuit breaker's current state (the worst over live processes).",
    ["dependency", "state"],
    multiprocess_mode="livemax",
)
dependency_calls = Counter(
    "propintel_dependency_calls_total",
    "Guarded calls by outcome: success, failure, timeout, rejected (breaker open or "
    "bulkhead full).",
    ["dependency", "outcome"],
)
dependency_call_duration = Histogram(
    "propintel_dependency_call_duration_seconds",
    "Duration of each guarded attempt.",
    ["dependency"],
    buckets=LATENCY_BUCKETS,
)
retries = Counter("propintel_retries_total", "Retried attempts, by dependency.", ["dependency"])
bulkhead_active = Gauge(
    "propintel_bulkhead_active",
    "Calls inside the bulkhead now.",
    ["dependency"],
    multiprocess_mode="livesum",
)
bulkhead_rejected = Counter(
    "propintel_bulkhead_rejected_total",
    "Calls refused because the bulkhead and its queue were full.",
    ["dependency"],
)

# Rate limits (the gate).
ratelimit_decisions = Counter(
    "propintel_ratelimit_decisions_total",
    "Rate-limit decisions by role: allowed or limited.",
    ["role", "decision"],
)

# The database handle (db/engine.py): reads on the asyncpg pool, writes on SQLAlchemy's.
db_pool_in_use = Gauge(
    "propintel_db_pool_in_use",
    "Connections checked out, by pool (reads, writes).",
    ["pool"],
    multiprocess_mode="livesum",
)
db_pool_size = Gauge(
    "propintel_db_pool_size",
    "Most connections each pool may open (summed over live processes).",
    ["pool"],
    multiprocess_mode="livesum",
)
db_pool_acquire = Histogram(
    "propintel_db_pool_acquire_seconds",
    "Time waiting for a pooled connection.",
    ["pool"],
    buckets=LATENCY_BUCKETS,
)
db_statements = Counter("propintel_db_statements_total", "SQL statements sent, by pool.", ["pool"])

# Background jobs and webhooks (issue 14).
jobs = Counter(
    "propintel_jobs_total",
    "Job runs by kind and outcome: succeeded, rescheduled, retrying, dead, failed.",
    ["job", "outcome"],
)
job_duration = Histogram(
    "propintel_job_duration_seconds",
    "Duration of each job run, by kind.",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0),
)
webhook_deliveries = Counter(
    "propintel_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered, retrying, dead (given up), gone "
    "(410: endpoint disabled).",
    ["outcome"],
)

# The price model.
model_predictions = Counter(
    "propintel_model_predictions_total",
    "Price estimates computed (cache misses), by outcome: ok, unavailable.",
    ["outcome"],
)

build_info = Gauge(
    "propintel_build_info",
    "1, labelled with the running version.",
    ["version"],
    multiprocess_mode="livemax",
)

# Families computed at scrape time from the database (app/http/metrics.py): the queue is
# shared by every process and machine, so no process's counter could say these.
JOB_QUEUE_DEPTH = "propintel_job_queue_depth"
JOB_LAST_SUCCESS = "propintel_job_last_success_timestamp_seconds"
JOB_PERIOD = "propintel_job_period_seconds"
SCRAPE_TIME = {
    JOB_QUEUE_DEPTH: "Jobs in the queue by status (queued, running, retrying, dead).",
    JOB_LAST_SUCCESS: "When each job kind last succeeded (Unix time; absent: never, or purged).",
    JOB_PERIOD: "The period of each periodic job kind, in seconds (alert when a job has "
    "not succeeded for two).",
}
"""Name -> help of each scrape-time family."""

"""GET /metrics: every metric family (app/telemetry/metrics.py) in the Prometheus text format.

Under `propintel serve` the values of all worker processes are summed from the multiprocess
directory (app/telemetry/multiprocess.py) into a registry made per scrape, after sweeping
the live gauges of workers that died; in-process apps (tests) report the default registry.

The job queue's depth and each job's last success are read from the database at scrape
time, not counted by processes: they are the same for every process and machine, and a
counter could not know about jobs other machines ran. One short statement; when the
database does not answer in time those families are left out, the scrape still answers.

Access: in prod, only from PROPINTEL_METRICS_ALLOW networks (the connection's peer as the
ASGI server reports it: uvicorn replaces it with X-Forwarded-For only for connections from
its FORWARDED_ALLOW_IPS, loopback by default) or with `Authorization: Bearer
<PROPINTEL_METRICS_TOKEN>`. Elsewhere open.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Iterator
from importlib import metadata

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.cache.stats import cache_requests
from app.jobs.metrics import JobCatalogue, JobMetrics
from app.settings import Profile, Settings
from app.telemetry import metrics, multiprocess
from app.webhooks.tasks import DELIVERY_OUTCOMES
from db.engine import Database
from db.repositories import jobs as jobs_repo
from db.repositories.jobs import QueueMetrics

logger = logging.getLogger("propintel.metrics")

QUEUE_TIMEOUT_S = 1.0
"""How long a scrape waits for the queue's state before leaving those families out."""
EXECUTOR_PATHS = ("compiled", "fallback", "standard")
EVICTION_REASONS = ("capacity", "invalidation", "flush")


def version() -> str:
    try:
        return metadata.version("propintel")
    except metadata.PackageNotFoundError:  # running from a tree that is not installed
        return "unknown"


def preinitialise(catalogue: JobCatalogue | None) -> None:
    """Makes the series no component has made yet, at 0, so every family shows before its
    first event (the components make their own as they are built: each dependency's
    outcomes and states, the pools, the cache's tiers, a worker's job kinds)."""
    metrics.build_info.labels(version()).set(1)
    for path in EXECUTOR_PATHS:
        metrics.executor_operations.labels(path)
    cache_requests()
    metrics.cache_entries.labels("l1")
    for reason in EVICTION_REASONS:
        metrics.cache_evictions.labels(reason)
    for outcome in DELIVERY_OUTCOMES:
        metrics.webhook_deliveries.labels(outcome)
    for outcome in ("ok", "unavailable"):
        metrics.model_predictions.labels(outcome)
    if catalogue is not None:
        JobMetrics(catalogue.kinds)


class QueueCollector:
    """The scrape-time families (metrics.SCRAPE_TIME), from one reading of the queue."""

    def __init__(self, catalogue: JobCatalogue, queue: QueueMetrics | None) -> None:
        self.catalogue = catalogue
        self.queue = queue

    def collect(self) -> Iterator[Metric]:
        help_of = metrics.SCRAPE_TIME
        periods = GaugeMetricFamily(metrics.JOB_PERIOD, help_of[metrics.JOB_PERIOD], labels=["job"])
        for kind, seconds in sorted(self.catalogue.periods.items()):
            periods.add_metric([kind], seconds)
        yield periods
        if self.queue is None:
            return
        depth = GaugeMetricFamily(
            metrics.JOB_QUEUE_DEPTH, help_of[metrics.JOB_QUEUE_DEPTH], labels=["status"]
        )
        for status, count in self.queue.depth.items():
            depth.add_metric([status.lower()], count)
        yield depth
        last = GaugeMetricFamily(
            metrics.JOB_LAST_SUCCESS, help_of[metrics.JOB_LAST_SUCCESS], labels=["job"]
        )
        for kind, finished in sorted(self.queue.last_success.items()):
            last.add_metric([kind], finished.timestamp())
        yield last


class MetricsEndpoint:
    def __init__(self, settings: Settings, db: Database, catalogue: JobCatalogue) -> None:
        self.open = settings.profile is not Profile.PROD
        self.networks = [ipaddress.ip_network(n, strict=False) for n in settings.metrics_allow]
        token = settings.metrics_token
        self.token = token.get_secret_value().encode() if token is not None else None
        self.db = db
        self.catalogue = catalogue
        self._queue_failing = False

    async def handle(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        queue = await self._queue()
        body = await run_in_threadpool(self._render, queue)  # reads and merges files
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def _refusal(self, request: Request) -> Response | None:
        if self.open or self._peer_allowed(request):
            return None
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credential:
            if self.token is not None and hmac.compare_digest(credential.encode(), self.token):
                return None
            return PlainTextResponse(
                "metrics: wrong token\n", status_code=401, headers={"www-authenticate": "Bearer"}
            )
        return PlainTextResponse(
            "metrics: not from this address (PROPINTEL_METRICS_ALLOW) and no token\n",
            status_code=403,
        )

    def _peer_allowed(self, request: Request) -> bool:
        if request.client is None:
            return False
        try:
            peer = ipaddress.ip_address(request.client.host)
        except ValueError:
            return False
        if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
            peer = peer.ipv4_mapped
        return any(peer in network for network in self.networks)

    async def _queue(self) -> QueueMetrics | None:
        try:
            async with asyncio.timeout(QUEUE_TIMEOUT_S):
                queue = await jobs_repo.queue_metrics(self.db, self.catalogue.kinds)
        except Exception as error:  # the database away or slow: the scrape answers without
            if not self._queue_failing:
                logger.warning("metrics: job queue state not read: %r", error)
            self._queue_failing = True
            return None
        self._queue_failing = False
        return queue

    def _render(self, queue: QueueMetrics | None) -> bytes:
        scrape_time = CollectorRegistry()
        scrape_time.register(QueueCollector(self.catalogue, queue))
        directory = multiprocess.directory()
        if directory is None:  # one process: its own registry
            return generate_latest(REGISTRY) + generate_latest(scrape_time)
        multiprocess.sweep_dead()
        MultiProcessCollector(scrape_time, path=str(directory))  # type: ignore[no-untyped-call]
        return generate_latest(scrape_time)


def metrics_route(settings: Settings, db: Database, catalogue: JobCatalogue) -> Route:
    return Route("/metrics", MetricsEndpoint(settings, db, catalogue).handle, methods=["GET"])

"""The worker's side of webhooks: `webhook.deliver` (one attempt per run) and the periodic
`webhooks.retention`.

A delivery's job runs once per attempt. An attempt that fails schedules the next by
returning RunAgain(next attempt): the job waits in the queue, not in a worker slot. The
delivery row is the truth (status, attempts, next_attempt_at); the job only wakes it, so a
duplicate job (a replay while a retry waits, a worker killed mid-attempt) does no harm:
`claim_attempt` lets one of them send each attempt.
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.jobs import periodic
from app.jobs.registry import Job, JobRegistry, RunAgain
from app.settings import Settings
from app.telemetry import metrics
from app.webhooks import signing
from app.webhooks.payloads import build_body, digest_sale_ids
from app.webhooks.schedule import parse_retry_after, retry_delay
from app.webhooks.urls import RefusedUrl, check_url
from db.engine import Database
from db.repositories import webhooks as repo
from db.repositories.webhooks import DeliveryTarget, Outcome

DELIVER = "webhook.deliver"
RETENTION = "webhooks.retention"
AT_CAP_DELAY = timedelta(seconds=0.2)
"""How soon a delivery whose endpoint is at its concurrency cap is looked at again."""
ENDPOINT_CACHE_SIZE = 100_000
SPACING = 1.25
"""Turn-aways at the cap come back spaced a little wider than slots free, so that few of
them find the endpoint still full (each return costs the queue a claim and a write)."""
READ_AHEAD = 500
"""Deliveries after an unknown one whose endpoints are read with it (see _endpoint_of)."""
RESPONSE_BYTES_READ = 64 * 1024
"""What an attempt reads of the answer (enough to keep the connection; the body is ignored)."""
USER_AGENT = "propintel-webhooks/1"
MAX_ERROR_CHARS = 500
HOLD_MARGIN_S = 10

Clock = Callable[[], datetime]

DELIVERY_OUTCOMES = ("delivered", "retrying", "dead", "gone")
"""propintel_webhook_deliveries_total: an attempt delivered (2xx), failed with another
attempt scheduled, failed for good (attempts spent, or the endpoint disabled for failing),
or answered 410 Gone (the endpoint is disabled)."""


def _outcome_label(outcome: Outcome, status: str) -> str:
    if outcome.succeeded:
        return "delivered"
    if outcome.gone:
        return "gone"
    return "retrying" if status == "FAILED" and outcome.next_attempt_at is not None else "dead"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Clients:
    """One shared httpx client per event loop (a worker process has one loop; tests start
    several): keep-alive connections to receivers, no redirects followed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                follow_redirects=False,
                timeout=httpx.Timeout(self.settings.webhook_timeout_s),
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
                headers={"user-agent": USER_AGENT},
                trust_env=False,  # never through a proxy from the environment
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()


class Deliverer:
    """`webhook.deliver {"delivery_id"}`: one attempt of one delivery."""

    def __init__(self, db: Database, settings: Settings, *, clock: Clock = _utcnow) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.clients = Clients(settings)
        self.in_flight: Counter[int] = Counter()
        """Attempts in flight per endpoint in this process (the per-endpoint cap)."""
        self._endpoint_of: OrderedDict[int, int] = OrderedDict()
        """Delivery -> endpoint, for the deliveries this process has seen: a delivery put
        back at the cap is turned away again without a query."""
        self._duration: dict[int, float] = {}
        self._queued_until: dict[int, datetime] = {}
        self._reading = asyncio.Lock()
        self._deliveries = {
            name: metrics.webhook_deliveries.labels(name) for name in DELIVERY_OUTCOMES
        }

    async def __call__(self, job: Job) -> RunAgain | None:
        delivery_id = int(job.payload["delivery_id"])
        now = self.clock()
        endpoint_id = self._endpoint_of.get(delivery_id)
        if endpoint_id is None:
            endpoint_id = await self._endpoint_of_unknown(delivery_id)
            if endpoint_id is None:
                return None  # deleted (with its endpoint, or by retention), or final
        if self.in_flight[endpoint_id] >= self.settings.webhook_endpoint_concurrency:
            # At the cap: look again later, without holding a worker slot (or the database).
            return RunAgain(self._back_at(endpoint_id, now))
        self.in_flight[endpoint_id] += 1
        started = time.perf_counter()
        try:
            outcome = await self._attempt(delivery_id, now)
        finally:
            self.in_flight[endpoint_id] -= 1
            if self.in_flight[endpoint_id] <= 0:
                del self.in_flight[endpoint_id]
            self._took(endpoint_id, time.perf_counter() - started)
        if outcome is None:
            self._endpoint_of.pop(delivery_id, None)
        return outcome

    def _back_at(self, endpoint_id: int, now: datetime) -> datetime:
        """When a delivery turned away at its endpoint's cap comes back: AT_CAP_DELAY, or
        later when this process has already turned others away for that endpoint, spaced
        by the time a slot takes to free (an attempt's recent duration / the cap). A burst
        for one endpoint (a user's alerts arrive together) then comes back about when
        slots free, instead of all of it every 0.2 s."""
        cap = self.settings.webhook_endpoint_concurrency
        spacing = timedelta(seconds=self._duration.get(endpoint_id, 0.05) * SPACING / cap)
        queued_until = max(self._queued_until.get(endpoint_id, now), now) + spacing
        self._queued_until[endpoint_id] = queued_until
        if len(self._queued_until) > ENDPOINT_CACHE_SIZE:
            self._queued_until.pop(next(iter(self._queued_until)))
        jitter = AT_CAP_DELAY * random.uniform(0, 0.5)
        return max(now + AT_CAP_DELAY, queued_until) + jitter

    def _took(self, endpoint_id: int, seconds: float) -> None:
        """An attempt's duration, smoothed per endpoint (spaces the cap's returns)."""
        previous = self._duration.get(endpoint_id)
        self._duration[endpoint_id] = (
            seconds if previous is None else 0.8 * previous + 0.2 * seconds
        )
        if len(self._duration) > ENDPOINT_CACHE_SIZE:
            self._duration.pop(next(iter(self._duration)))

    async def _endpoint_of_unknown(self, delivery_id: int) -> int | None:
        # One read at a time: the jobs claimed together are mostly of deliveries made
        # together, so the first read (of the next READ_AHEAD) answers the others too.
        async with self._reading:
            endpoint_id = self._endpoint_of.get(delivery_id)
            if endpoint_id is not None:
                return endpoint_id
            found = await repo.endpoints_of_deliveries(self.db, delivery_id, ahead=READ_AHEAD)
        for other, endpoint in found.items():
            self._remember(other, endpoint)
        return found.get(delivery_id)

    def _remember(self, delivery_id: int, endpoint_id: int) -> None:
        self._endpoint_of[delivery_id] = endpoint_id
        if len(self._endpoint_of) > ENDPOINT_CACHE_SIZE:
            self._endpoint_of.popitem(last=False)

    async def _attempt(self, delivery_id: int, now: datetime) -> RunAgain | None:
        # The attempt is this job's until its timeout and a margin to record the outcome; a
        # worker killed mid-attempt leaves it due again then (sooner would risk two sends).
        hold = now + timedelta(seconds=self.settings.webhook_timeout_s + HOLD_MARGIN_S)
        claimed = await repo.claim_attempt(self.db, delivery_id, now, hold)
        if claimed is None:
            return await self._not_claimed(delivery_id, now)
        target = claimed.target
        body = target.payload
        if body is None:
            facts = claimed.facts
            if facts is None and target.alert_id is not None:
                facts = await repo.alert_facts(self.db, target.alert_id)
            if facts is None:  # the alert is gone (its user deleted it): nothing to say
                await repo.cancel_delivery(self.db, target.delivery_id)
                return None
            sales = await repo.sale_facts(self.db, digest_sale_ids(facts))
            built = build_body(facts, sales)
            body = await repo.store_payload(self.db, target.delivery_id, built)
        outcome = await self._send(target, body)
        status = await repo.record_attempt(self.db, target, outcome)
        self._deliveries[_outcome_label(outcome, status)].inc()
        if status == "FAILED" and outcome.next_attempt_at is not None:
            return RunAgain(outcome.next_attempt_at)
        return None

    async def _not_claimed(self, delivery_id: int, now: datetime) -> RunAgain | None:
        """Why the attempt could not be taken, and what this job does about it."""
        target = await repo.delivery_target(self.db, delivery_id)
        if target is None or target.status not in repo.RETRYABLE:
            return None  # deleted, or final (another job of it finished it)
        if target.endpoint_status != "ACTIVE":
            await repo.cancel_delivery(self.db, delivery_id)
            return None
        # Not due: a replayed delivery's older job, or another job holds this attempt.
        return RunAgain(target.next_attempt_at or now + AT_CAP_DELAY)

    def _secrets(self, target: DeliveryTarget, now: datetime) -> list[str]:
        signing_secrets = [target.secret]
        if (
            target.previous_secret is not None
            and target.previous_secret_expires_at is not None
            and target.previous_secret_expires_at > now
        ):
            signing_secrets.append(target.previous_secret)
        return signing_secrets

    async def _send(self, target: DeliveryTarget, body: str) -> Outcome:
        started_at = self.clock()
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        retry_after: str | None = None
        timeout = self.settings.webhook_timeout_s
        try:
            # The whole attempt within the timeout: the DNS lookup, a slow drip included.
            async with asyncio.timeout(timeout):
                await check_url(target.url, self.settings)
                timestamp = int(time.time())
                headers = signing.headers(
                    self._secrets(target, started_at), target.message_id, timestamp, body
                )
                async with self.clients.get().stream(
                    "POST", target.url, content=body.encode(), headers=headers
                ) as response:
                    status_code = response.status_code
                    retry_after = response.headers.get("retry-after")
                    location = response.headers.get("location")
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= RESPONSE_BYTES_READ:
                            break
            if not 200 <= status_code < 300:
                error = _status_error(status_code, location)
        except RefusedUrl as refused:
            error = str(refused)
        except (TimeoutError, httpx.TimeoutException):
            error = f"no answer within {timeout:g} s"
        except httpx.HTTPError as failure:
            error = (
                f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
            )
        duration_ms = round((time.perf_counter() - started) * 1000)
        succeeded = status_code is not None and 200 <= status_code < 300 and error is None
        gone = status_code == 410
        next_attempt_at: datetime | None = None
        if not succeeded and not gone:
            attempts_made = target.attempt_count + 1
            delay = retry_delay(attempts_made)
            if delay is not None and status_code in (429, 503):
                asked = parse_retry_after(retry_after, started_at)
                if asked is not None:
                    delay = asked
            if delay is not None:
                next_attempt_at = self.clock() + delay
        return Outcome(
            attempted_at=started_at,
            status_code=status_code,
            duration_ms=duration_ms,
            error=None if error is None else error[:MAX_ERROR_CHARS],
            succeeded=succeeded,
            next_attempt_at=next_attempt_at,
            gone=gone,
        )


def _status_error(status_code: int, location: str | None) -> str:
    if 300 <= status_code < 400:
        where = f" to {location}" if location else ""
        return f"answered {status_code}{where}: redirects are not followed"
    if status_code == 410:
        return f"answered 410 Gone: {repo.GONE_REASON}; the endpoint is disabled"
    return f"answered {status_code}; only 2xx is a success"


async def retention(db: Database, settings: Settings, now: datetime) -> dict[str, int]:
    succeeded = await repo.purge_deliveries(
        db, ["SUCCEEDED"], now - timedelta(days=settings.webhook_retention_days)
    )
    failed = await repo.purge_deliveries(
        db,
        ["FAILED", "DEAD", "CANCELLED"],
        now - timedelta(days=settings.webhook_failed_retention_days),
    )
    return {"succeeded": succeeded, "failed": failed}


def register(registry: JobRegistry, *, db: Database, settings: Settings, **_: Any) -> Deliverer:
    """Adds `webhook.deliver` and the hourly `webhooks.retention` to the registry."""
    deliverer = Deliverer(db, settings)

    async def purge(job: Job) -> None:
        await retention(db, settings, _utcnow())

    # The worker's heartbeat extends the lease while an attempt runs, so it need not outlast
    # the timeout; kept short, a killed worker's delivery is taken again soon.
    registry.register(DELIVER, deliverer, lease=timedelta(seconds=settings.job_lease_s))
    registry.register(RETENTION, purge, lease=timedelta(minutes=10))
    registry.on_stop(deliverer.clients.aclose)  # its keep-alive connections, closed cleanly
    registry.every(RETENTION, RETENTION, periodic.hourly)
    return deliverer

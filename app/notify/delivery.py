"""Sending queued webhook deliveries: signed POSTs, retried with backoff, every attempt logged.

:func:`deliver_due` sends what is due once (tests drive it directly, with an
``httpx.MockTransport``); :class:`DeliveryLoop` calls it periodically from the app's lifespan, in
a thread, never on the request path. Each delivery is claimed with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several replicas never send the same attempt twice.

Outcome of one attempt: 2xx delivered; a network error, a timeout, 408, 429 or 5xx is retried
after :func:`app.replan.webhooks.next_retry_delay` until ``max_attempts``; any other status is a
refusal by the receiver and fails the delivery at once. Secrets and payloads are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random as _random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.notify.targets import PublicOnlyTransport
from app.replan.webhooks import SIGNATURE_HEADER, RetryPolicy, next_retry_delay, sign
from app.settings import Settings
from app.store.models import DeliveryStatus, WebhookDelivery, WebhookSubscription, utcnow

log = logging.getLogger(__name__)


class _RedactUrls(logging.Filter):
    """Shortens every URL argument of a record to ``scheme://host[:port]/...``.

    httpx logs each request at INFO with its full URL: a webhook URL's path and query may hold a
    receiver's token, and a geocoder's query holds a client's address.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_origin_only(a) for a in record.args)
        return True


def _origin_only(value: object) -> object:
    if isinstance(value, httpx.URL):
        return f"{value.scheme}://{value.netloc.decode('ascii', 'replace')}/..."
    return value


_REDACT = _RedactUrls()


def redact_http_client_logs() -> None:
    """Make the ``httpx`` and ``httpcore`` loggers write no path or query (idempotent)."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)
    # httpcore's debug lines name hosts and headers; nothing the service needs to read.
    logging.getLogger("httpcore").setLevel(logging.WARNING)


#: Statuses worth retrying besides 5xx (request timeout, rate limited).
RETRY_STATUSES = frozenset({408, 429})
USER_AGENT = "homecare-planner-webhooks/1"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one delivery attempt ended in."""

    delivery_id: int
    status: DeliveryStatus
    status_code: int | None


def body_of(delivery: WebhookDelivery) -> bytes:
    """The exact bytes sent (and signed) for a delivery: compact, key-sorted JSON."""
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


def deliver_due(
    factory: sessionmaker[Session],
    http: httpx.Client,
    *,
    policy: RetryPolicy,
    now: dt.datetime | None = None,
    limit: int = 50,
    random: Callable[[], float] = _random.random,
) -> list[AttemptResult]:
    """Attempt every pending delivery due at ``now`` (at most ``limit``), each in its own commit.

    Parameters
    ----------
    factory
        Sessions on the service database.
    http
        The client that sends (its transport is configurable: tests use ``httpx.MockTransport``).
    policy
        Backoff and the maximum number of attempts.
    now
        The current instant (tests step it forward); default the clock.
    limit
        Largest number of deliveries handled in this call.
    random
        Jitter source for the backoff.

    Returns
    -------
    list of AttemptResult
        One per attempt made, in order.
    """
    at = now or utcnow()
    out: list[AttemptResult] = []
    for _ in range(limit):
        with factory.begin() as session:
            row = session.execute(
                select(WebhookDelivery, WebhookSubscription)
                .join(
                    WebhookSubscription, WebhookDelivery.subscription_id == WebhookSubscription.id
                )
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= at,
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(1)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            ).first()
            if row is None:
                break
            delivery, subscription = row
            out.append(_attempt(http, delivery, subscription, policy, at, random))
    return out


def _attempt(
    http: httpx.Client,
    delivery: WebhookDelivery,
    subscription: WebhookSubscription,
    policy: RetryPolicy,
    at: dt.datetime,
    random: Callable[[], float],
) -> AttemptResult:
    body = body_of(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(subscription.secret.encode("utf-8"), int(at.timestamp()), body),
        "Homecare-Event": delivery.event_type,
        "Homecare-Delivery": str(delivery.id),
    }
    code: int | None = None
    error: str | None = None
    try:
        response = http.post(subscription.url, content=body, headers=headers)
        code = response.status_code
    except httpx.HTTPError as exc:
        error = type(exc).__name__
    delivery.attempts += 1
    delivery.last_status_code = code
    delivery.updated_at = at
    if code is not None and 200 <= code < 300:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = at
        delivery.next_attempt_at = None
        delivery.last_error = None
    else:
        if code is not None:
            error = f"HTTP {code}"
        delivery.last_error = error
        retryable = code is None or code >= 500 or code in RETRY_STATUSES
        delay = next_retry_delay(policy, delivery.attempts, random=random) if retryable else None
        if delay is None:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            log.warning(
                "webhook delivery %s to subscription %s failed after %d attempt(s): %s",
                delivery.id,
                subscription.id,
                delivery.attempts,
                error,
            )
        else:
            delivery.next_attempt_at = at + dt.timedelta(seconds=delay)
    return AttemptResult(delivery.id, delivery.status, code)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The backoff of the settings (default schedule, ``webhook_max_attempts`` attempts)."""
    return RetryPolicy(max_attempts=settings.webhook_max_attempts)


class DeliveryLoop:
    """Sends due deliveries every ``webhook_poll_s`` seconds, in a thread, until stopped."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._factory = factory
        self._settings = settings
        self._policy = retry_policy(settings)
        if transport is None and not settings.webhook_allow_private_targets:
            transport = PublicOnlyTransport()
        redact_http_client_logs()
        # trust_env=False: a proxy from the environment would connect instead of the transport.
        self._http = httpx.Client(
            transport=transport,
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
            trust_env=False,
        )
        self._task: asyncio.Task[None] | None = None
        # Held while a round runs in its thread: stopping waits for it, so no round is left
        # holding a database connection after the engine is disposed.
        self._busy = threading.Lock()

    async def start(self) -> None:
        """Start the loop (first round after one poll interval)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="webhook-delivery")

    async def stop(self) -> None:
        """Stop the loop, wait for a round in progress, close the HTTP client."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self._busy.acquire)
        self._busy.release()
        self._http.close()

    def run_once(self) -> list[AttemptResult]:
        """One round now, in the calling thread."""
        with self._busy:
            return deliver_due(self._factory, self._http, policy=self._policy)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._settings.webhook_poll_s)
            try:
                await asyncio.to_thread(self.run_once)
            except Exception as exc:  # a bad round must not end the loop; the next one retries
                log.error("webhook delivery round failed: %s", type(exc).__name__)

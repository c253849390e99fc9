"""Webhook subscriptions and the outbox: events are queued in the caller's transaction.

A plan change and the deliveries announcing it are written together, so a committed version is
always announced and a rolled-back one never is (the transactional-outbox pattern). Sending
happens later, off the request path (:mod:`app.notify.delivery`). Functions only flush.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import ErrorDetail, InvalidInput, NotFound
from app.store.models import DeliveryStatus, WebhookDelivery, WebhookSubscription, utcnow

#: Event types a subscription may ask for.
EVENT_TYPES: tuple[str, ...] = ("plan.changed",)
#: Prefix of generated secrets (recognisable in a vendor's configuration).
SECRET_PREFIX = "whsec_"


@dataclass(frozen=True, slots=True)
class NewSubscription:
    """A subscription just created, with its secret (the only time it is returned)."""

    subscription: WebhookSubscription
    secret: str


def create_subscription(
    session: Session,
    org_id: int,
    *,
    url: str,
    event_types: Sequence[str],
    actor: str,
    secret: str | None = None,
) -> NewSubscription:
    """Subscribe ``url`` to ``event_types``; a random secret is generated unless one is given.

    Raises
    ------
    InvalidInput
        An unknown event type.
    """
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        msg = f"unknown event type(s): {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}"
        raise InvalidInput(msg, [ErrorDetail(("event_types",), "unknown_event_type", msg)])
    plaintext = secret or SECRET_PREFIX + secrets.token_urlsafe(32)
    row = WebhookSubscription(
        org_id=org_id,
        url=url,
        secret=plaintext,
        event_types=sorted(set(event_types)),
        active=True,
        created_by=actor,
    )
    session.add(row)
    session.flush()
    return NewSubscription(row, plaintext)


def list_subscriptions(
    session: Session, org_id: int, *, limit: int, offset: int
) -> tuple[list[WebhookSubscription], int]:
    """The organisation's subscriptions, oldest first, and their total."""
    where = WebhookSubscription.org_id == org_id
    total = session.scalar(select(func.count()).select_from(WebhookSubscription).where(where))
    rows = session.scalars(
        select(WebhookSubscription)
        .where(where)
        .order_by(WebhookSubscription.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


def get_subscription(session: Session, org_id: int, subscription_id: int) -> WebhookSubscription:
    """One subscription of the organisation.

    Raises
    ------
    NotFound
        Not there, or another organisation's.
    """
    row = session.scalar(
        select(WebhookSubscription).where(
            WebhookSubscription.org_id == org_id, WebhookSubscription.id == subscription_id
        )
    )
    if row is None:
        msg = f"no webhook subscription {subscription_id}"
        raise NotFound(msg)
    return row


def delete_subscription(session: Session, org_id: int, subscription_id: int) -> None:
    """Remove a subscription and its delivery log (pending deliveries are dropped)."""
    session.delete(get_subscription(session, org_id, subscription_id))
    session.flush()


def list_deliveries(
    session: Session, org_id: int, subscription_id: int, *, limit: int, offset: int
) -> tuple[list[WebhookDelivery], int]:
    """A subscription's delivery log, newest first, and its total."""
    get_subscription(session, org_id, subscription_id)
    where = (WebhookDelivery.org_id == org_id) & (
        WebhookDelivery.subscription_id == subscription_id
    )
    total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(where))
    rows = session.scalars(
        select(WebhookDelivery)
        .where(where)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


def enqueue(session: Session, org_id: int, event_type: str, data: dict[str, Any]) -> str:
    """Queue ``event_type`` with ``data`` for every active subscription that wants it.

    Parameters
    ----------
    session
        The transaction that makes the change being announced (flushed, not committed).
    org_id
        Whose subscribers hear about it.
    event_type
        One of :data:`EVENT_TYPES`.
    data
        JSON-ready content (ids, versions, counts: no names, addresses or notes).

    Returns
    -------
    str
        The event id (the same for every subscriber; receivers de-duplicate with it).
    """
    event_id = str(uuid.uuid4())
    now = utcnow()
    subs = session.scalars(
        select(WebhookSubscription).where(
            WebhookSubscription.org_id == org_id, WebhookSubscription.active.is_(True)
        )
    )
    payload = {"id": event_id, "type": event_type, "created_at": now.isoformat(), "data": data}
    for sub in subs:
        if event_type not in sub.event_types:
            continue
        session.add(
            WebhookDelivery(
                org_id=org_id,
                subscription_id=sub.id,
                event_id=event_id,
                event_type=event_type,
                payload=payload,
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    session.flush()
    return event_id

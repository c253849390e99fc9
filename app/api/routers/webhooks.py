"""Webhook subscriptions for vendors: subscribe (the secret is shown once), list, delete, log.

Organisation-wide credentials with the ``write`` scope only (admins, API keys): a subscription
hears about every district of the organisation.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from app.api import authz
from app.api.deps import SessionDep, SettingsDep, Writer
from app.api.errors import ErrorBody
from app.api.routers._items import ITEM_ERRORS, READ_ERRORS, Limit, Offset
from app.api.routing import StrictJSONRoute
from app.errors import ErrorDetail, InvalidInput
from app.notify import outbox
from app.notify.targets import target_problem
from app.store import audit
from app.store.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=StrictJSONRoute)

SubscriptionId = Annotated[int, Path(ge=1, le=2_147_483_647)]


class SubscriptionIn(BaseModel):
    """Where to send which events."""

    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(examples=["https://ecd.example.com/hooks/planner"])
    event_types: list[str] = Field(
        default_factory=lambda: list(outbox.EVENT_TYPES), min_length=1, max_length=10
    )


class SubscriptionOut(BaseModel):
    """A subscription (never with its secret)."""

    id: int
    url: str
    event_types: list[str]
    active: bool
    created_at: dt.datetime


class NewSubscriptionOut(SubscriptionOut):
    """A subscription just created, with the signing secret: shown this once only."""

    secret: str = Field(description="Verify `Homecare-Signature` with it; not shown again.")


class SubscriptionPage(BaseModel):
    """A page of subscriptions."""

    items: list[SubscriptionOut]
    total: int
    limit: int
    offset: int


class DeliveryOut(BaseModel):
    """One event sent (or being sent) to a subscription."""

    id: int
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    delivered_at: dt.datetime | None


class DeliveryPage(BaseModel):
    """A page of a subscription's delivery log, newest first."""

    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int


def _out(row: WebhookSubscription) -> SubscriptionOut:
    return SubscriptionOut(
        id=row.id,
        url=row.url,
        event_types=list(row.event_types),
        active=row.active,
        created_at=row.created_at,
    )


def _delivery(row: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        delivered_at=row.delivered_at,
    )


@router.post(
    "",
    summary="Subscribe to plan-changed webhooks",
    status_code=201,
    response_model=NewSubscriptionOut,
    responses={**READ_ERRORS, 422: {"model": ErrorBody, "description": "Invalid request."}},
)
def create_webhook(
    body: SubscriptionIn, principal: Writer, session: SessionDep, settings: SettingsDep
) -> NewSubscriptionOut:
    """Every plan change is POSTed to `url` as JSON, signed in `Homecare-Signature`
    (`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`), retried with backoff on errors.
    The answer holds the secret: store it, it is not shown again."""
    authz.ensure_org_wide(principal)
    problem = target_problem(str(body.url), allow_private=settings.webhook_allow_private_targets)
    if problem is not None:
        msg = "the webhook URL is not allowed"
        raise InvalidInput(msg, [ErrorDetail(("url",), "webhook_target_not_allowed", problem)])
    new = outbox.create_subscription(
        session,
        principal.org_id,
        url=str(body.url),
        event_types=body.event_types,
        actor=principal.actor,
    )
    audit.record(
        session,
        principal.org_id,
        actor=principal.actor,
        action="create",
        target_type="webhook",
        target_id=str(new.subscription.id),
    )
    return NewSubscriptionOut(**_out(new.subscription).model_dump(), secret=new.secret)


@router.get(
    "", summary="List webhook subscriptions", response_model=SubscriptionPage, responses=READ_ERRORS
)
def list_webhooks(
    principal: Writer, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> SubscriptionPage:
    """The organisation's subscriptions, oldest first (secrets are never shown)."""
    authz.ensure_org_wide(principal)
    rows, total = outbox.list_subscriptions(session, principal.org_id, limit=limit, offset=offset)
    return SubscriptionPage(items=[_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.delete(
    "/{subscription_id}",
    summary="Delete a webhook subscription",
    status_code=204,
    responses=ITEM_ERRORS,
)
def delete_webhook(
    subscription_id: SubscriptionId, principal: Writer, session: SessionDep
) -> Response:
    """Stop sending to this subscription; its pending deliveries and log go with it."""
    authz.ensure_org_wide(principal)
    outbox.delete_subscription(session, principal.org_id, subscription_id)
    audit.record(
        session,
        principal.org_id,
        actor=principal.actor,
        action="delete",
        target_type="webhook",
        target_id=str(subscription_id),
    )
    return Response(status_code=204)


@router.get(
    "/{subscription_id}/deliveries",
    summary="Delivery log of a webhook subscription",
    response_model=DeliveryPage,
    responses=ITEM_ERRORS,
)
def list_webhook_deliveries(
    subscription_id: SubscriptionId,
    principal: Writer,
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
) -> DeliveryPage:
    """Each event sent to the subscription: status, attempts, next attempt, last answer."""
    authz.ensure_org_wide(principal)
    rows, total = outbox.list_deliveries(
        session, principal.org_id, subscription_id, limit=limit, offset=offset
    )
    return DeliveryPage(items=[_delivery(r) for r in rows], total=total, limit=limit, offset=offset)

"""Sign-in for people: ``POST /v1/auth/token`` (email + password -> JWT) and "who am I"."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from app.api import ratelimit, security
from app.api.deps import AnyRole, SessionDep, SettingsDep
from app.api.errors import ErrorBody
from app.api.routers._items import AUTH_ERRORS
from app.api.routing import StrictJSONRoute
from app.errors import Unauthenticated
from app.store import users
from app.store.models import Role

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/auth", tags=["auth"], route_class=StrictJSONRoute)


class TokenRequest(BaseModel):
    """A person's email and password."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320, examples=["planner@thuiszorg.example"])
    password: str = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    """A sign-in token: send it as ``Authorization: Bearer <access_token>``."""

    access_token: str
    token_type: str = Field(default="bearer", examples=["bearer"])
    expires_in: int = Field(description="Seconds until the token expires.", examples=[1800])


class WhoAmI(BaseModel):
    """The caller as the service sees it (ids only, nothing personal)."""

    org_id: int
    role: Role
    scopes: list[str]
    actor: str = Field(description="The label audit entries carry for this caller.")
    user_id: int | None
    api_key_id: int | None
    staff: str | None = Field(description="A nurse's staff external id.")
    districts: list[str] | None = Field(description="A planner's districts; null means all.")


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


@router.post(
    "/token",
    summary="Sign in: email and password for a short-lived token",
    response_model=TokenOut,
    responses={
        401: {"model": ErrorBody, "description": "Wrong email or password, or user disabled."},
        422: {"model": ErrorBody, "description": "Malformed request."},
        429: {"model": ErrorBody, "description": "Too many attempts; see Retry-After."},
    },
)
def create_token(
    body: TokenRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> TokenOut:
    """A JWT (HS256) valid for `TOKEN_TTL_S` seconds (default 30 minutes); sign in again after.

    Attempts are limited per client address (`LOGIN_ATTEMPTS_PER_MIN`). A wrong email and a wrong
    password give the same answer, in the same time.
    """
    per_min = settings.login_attempts_per_min
    ratelimit.enforce(
        request.app.state.rate_limiter,
        f"login:{_client_address(request)}",
        rate=per_min / 60.0,
        burst=per_min,
    )
    user = users.authenticate(session, body.email, body.password)
    if user is None:
        log.info("sign-in refused")
        msg = "wrong email or password"
        raise Unauthenticated(msg)
    token, ttl = security.issue_token(settings, user)
    log.info("sign-in", extra={"actor": f"user:{user.id}", "org_id": user.org_id})
    return TokenOut(access_token=token, expires_in=ttl)


@router.get("/me", summary="Who am I", response_model=WhoAmI, responses=AUTH_ERRORS)
def who_am_i(principal: AnyRole, session: SessionDep) -> WhoAmI:
    """The organisation, role, scopes and reach of the credential (open to every role)."""
    staff = None
    districts = None
    if principal.user_id is not None:
        view = users.view(session, users.get_user(session, principal.org_id, principal.user_id))
        staff = view.staff if principal.role is Role.NURSE else None
        districts = view.districts if principal.district_ids is not None else None
    return WhoAmI(
        org_id=principal.org_id,
        role=principal.role,
        scopes=sorted(principal.scopes),
        actor=principal.actor,
        user_id=principal.user_id,
        api_key_id=principal.api_key_id,
        staff=staff,
        districts=districts,
    )

"""People who sign in (admin only): create, disable, a planner's districts, a nurse's staff row."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.api import authz
from app.api.deps import Admin, Principal, SessionDep
from app.api.errors import ErrorBody
from app.api.routers._items import AUTH_ERRORS, ITEM_ERRORS, WRITE_ERRORS, RowId
from app.api.routing import StrictJSONRoute
from app.store import audit, tenants, users
from app.store.models import Role, User
from app.store.users import UserView

router = APIRouter(prefix="/v1/users", tags=["users"], route_class=StrictJSONRoute)

_CONFLICT = {409: {"model": ErrorBody, "description": "The email is taken."}}


class UserCreate(BaseModel):
    """A new person: email, role and (optionally) password, districts or staff link."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    role: Role
    password: str | None = Field(
        default=None,
        min_length=12,
        max_length=1024,
        description="At least 12 characters; omitted means one is generated and returned once.",
    )
    districts: list[str] = Field(
        default_factory=list, max_length=1000, description="A planner's districts (external ids)."
    )
    staff: str | None = Field(
        default=None, max_length=100, description="A nurse's staff row (external id)."
    )


class UserOut(BaseModel):
    """A user (never the password or its hash)."""

    id: int
    email: str
    role: Role
    districts: list[str] = Field(description="A planner's districts (external ids).")
    staff: str | None = Field(description="A nurse's staff row (external id).")
    created_at: dt.datetime
    disabled_at: dt.datetime | None


class UserCreated(UserOut):
    """The new user; ``password`` holds a generated password once (null if one was given)."""

    password: str | None


class DistrictsIn(BaseModel):
    """The districts a planner may see and plan (external ids); replaces the current list."""

    model_config = ConfigDict(extra="forbid")

    districts: list[str] = Field(max_length=1000)


class StaffLinkIn(BaseModel):
    """The staff row (external id) whose route a nurse may read; null unlinks."""

    model_config = ConfigDict(extra="forbid")

    staff: str | None = Field(max_length=100)


def _out(view: UserView) -> UserOut:
    u = view.user
    return UserOut(
        id=u.id,
        email=u.email,
        role=u.role,
        districts=view.districts,
        staff=view.staff,
        created_at=u.created_at,
        disabled_at=u.disabled_at,
    )


def _ensure_within_caller(session: SessionDep, principal: Principal, user: User) -> None:
    """Refuse (403, and the request rolls back) a user left stronger than the caller."""
    authz.ensure_may_grant(
        principal,
        role=user.role,
        scopes=tenants.DEFAULT_SCOPES_BY_ROLE[user.role],
        district_ids=users.reach(session, user),
        what="user",
    )


def _audit(session: SessionDep, principal: Principal, action: str, user_id: int) -> None:
    audit.record(
        session,
        principal.org_id,
        actor=principal.actor,
        action=action,
        target_type="user",
        target_id=str(user_id),
    )


@router.get("", summary="List users", response_model=list[UserOut], responses=AUTH_ERRORS)
def list_users(principal: Admin, session: SessionDep) -> list[UserOut]:
    """Admin only. Every user of the organisation, by id."""
    return [_out(users.view(session, u)) for u in users.list_users(session, principal.org_id)]


@router.post(
    "",
    summary="Create a user",
    status_code=201,
    response_model=UserCreated,
    responses={**WRITE_ERRORS, **_CONFLICT},  # type: ignore[dict-item]
)
def create_user(body: UserCreate, principal: Admin, session: SessionDep) -> UserCreated:
    """Admin scope. A planner sees only `districts`; a nurse only the route of `staff`.

    The new user is never stronger than the caller (403 otherwise): their role ranks no higher,
    their role's scopes are the caller's or fewer, and their districts are within the caller's.
    """
    password = body.password or users.generate_password()
    user = users.create_user(
        session,
        principal.org_id,
        email=body.email,
        role=body.role,
        password=password,
        staff=body.staff,
        districts=body.districts,
    )
    _ensure_within_caller(session, principal, user)
    _audit(session, principal, "create", user.id)
    out = _out(users.view(session, user))
    return UserCreated(**out.model_dump(), password=None if body.password else password)


@router.get("/{user_id}", summary="Get a user", response_model=UserOut, responses=ITEM_ERRORS)
def get_user(user_id: RowId, principal: Admin, session: SessionDep) -> UserOut:
    """Admin only."""
    return _out(users.view(session, users.get_user(session, principal.org_id, user_id)))


@router.post(
    "/{user_id}/disable",
    summary="Disable a user",
    response_model=UserOut,
    responses=ITEM_ERRORS,
)
def disable_user(user_id: RowId, principal: Admin, session: SessionDep) -> UserOut:
    """Admin only. Idempotent; the user's tokens stop working at once."""
    user = users.set_disabled(session, principal.org_id, user_id, disabled=True)
    _audit(session, principal, "disable", user_id)
    return _out(users.view(session, user))


@router.post(
    "/{user_id}/enable",
    summary="Enable a user again",
    response_model=UserOut,
    responses=ITEM_ERRORS,
)
def enable_user(user_id: RowId, principal: Admin, session: SessionDep) -> UserOut:
    """Admin scope. Idempotent. Only a user no stronger than the caller (403 otherwise)."""
    user = users.set_disabled(session, principal.org_id, user_id, disabled=False)
    _ensure_within_caller(session, principal, user)
    _audit(session, principal, "enable", user_id)
    return _out(users.view(session, user))


@router.put(
    "/{user_id}/districts",
    summary="Set a planner's districts",
    response_model=UserOut,
    responses=WRITE_ERRORS,  # type: ignore[arg-type]
)
def set_districts(
    user_id: RowId, body: DistrictsIn, principal: Admin, session: SessionDep
) -> UserOut:
    """Admin only. Replaces the list; unknown districts are refused (422)."""
    user = users.set_districts(session, principal.org_id, user_id, body.districts)
    _ensure_within_caller(session, principal, user)
    _audit(session, principal, "set_districts", user_id)
    return _out(users.view(session, user))


@router.put(
    "/{user_id}/staff",
    summary="Link a nurse to their staff row",
    response_model=UserOut,
    responses=WRITE_ERRORS,  # type: ignore[arg-type]
)
def set_staff(user_id: RowId, body: StaffLinkIn, principal: Admin, session: SessionDep) -> UserOut:
    """Admin only. The nurse then reads exactly that staff member's route."""
    user = users.set_staff(session, principal.org_id, user_id, body.staff)
    _ensure_within_caller(session, principal, user)
    _audit(session, principal, "set_staff", user_id)
    return _out(users.view(session, user))

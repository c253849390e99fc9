"""The caller's organisation: settings, competence vocabulary, API keys."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api import authz
from app.api.deps import Admin, Reader, SessionDep
from app.api.routers._items import AUTH_ERRORS, ITEM_ERRORS, WRITE_ERRORS, RowId
from app.api.routing import StrictJSONRoute
from app.store import audit, tenants
from app.store.inputs import Code
from app.store.models import ApiKey, Role

router = APIRouter(prefix="/v1", tags=["organisation"], route_class=StrictJSONRoute)


class OrganisationOut(BaseModel):
    """The tenant."""

    id: int
    name: str
    timezone: str = Field(description="IANA timezone of every time of day in the API.")
    created_at: dt.datetime


class OrganisationPatch(BaseModel):
    """Fields to change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, examples=["Europe/Amsterdam"])

    @field_validator("timezone")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                msg = f"unknown IANA timezone {value!r}"
                raise ValueError(msg) from exc
        return value


class CompetenceEntry(BaseModel):
    """One competence: a code used in staff and visit rows, and a label for people."""

    model_config = ConfigDict(extra="forbid")

    code: Code = Field(examples=["insulin"])
    label: str = Field(default="", max_length=200, examples=["Insulin injection"])


class CompetenceList(BaseModel):
    """The organisation's whole competence vocabulary."""

    model_config = ConfigDict(extra="forbid")

    competences: list[CompetenceEntry] = Field(max_length=500)


class ApiKeyCreate(BaseModel):
    """A new API key: a name, a role and optionally narrower scopes."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["ECD vendor integration"])
    role: Role = Role.PLANNER
    scopes: list[str] | None = Field(
        default=None, description="Subset of read, write, plan, admin; default by role."
    )


class ApiKeyOut(BaseModel):
    """A stored key (never the key itself)."""

    id: int
    name: str
    prefix: str = Field(description="The first characters of the key, to recognise it.")
    role: Role
    scopes: list[str]
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class ApiKeyCreated(ApiKeyOut):
    """The new key: ``key`` is shown here once and cannot be retrieved again."""

    key: str


def _org_out(session: SessionDep, org_id: int) -> OrganisationOut:
    org = tenants.get_organisation(session, org_id)
    return OrganisationOut(
        id=org.id, name=org.name, timezone=org.timezone, created_at=org.created_at
    )


def _key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        role=key.role,
        scopes=key.scopes,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


@router.get(
    "/organisation",
    summary="Get the caller's organisation",
    response_model=OrganisationOut,
    responses=AUTH_ERRORS,
)
def get_organisation(principal: Reader, session: SessionDep) -> OrganisationOut:
    """Name and timezone of the organisation the credential belongs to."""
    return _org_out(session, principal.org_id)


@router.patch(
    "/organisation",
    summary="Change name or timezone",
    response_model=OrganisationOut,
    responses=WRITE_ERRORS,  # type: ignore[arg-type]
)
def patch_organisation(
    body: OrganisationPatch, principal: Admin, session: SessionDep
) -> OrganisationOut:
    """Admin only."""
    org = tenants.get_organisation(session, principal.org_id)
    if body.name is not None:
        org.name = body.name
    if body.timezone is not None:
        org.timezone = body.timezone
    session.flush()
    audit.record(
        session, org.id, actor=principal.actor, action="update", target_type="organisation"
    )
    return _org_out(session, principal.org_id)


@router.get(
    "/organisation/competences",
    summary="Get the competence vocabulary",
    response_model=CompetenceList,
    responses=AUTH_ERRORS,
)
def get_competences(principal: Reader, session: SessionDep) -> CompetenceList:
    """Every code staff, visits and templates may use; seeded with defaults."""
    rows = tenants.competences(session, principal.org_id)
    return CompetenceList(competences=[CompetenceEntry(code=c.code, label=c.label) for c in rows])


@router.put(
    "/organisation/competences",
    summary="Replace the competence vocabulary",
    response_model=CompetenceList,
    responses={**WRITE_ERRORS, 409: {"description": "A removed code is still in use."}},  # type: ignore[dict-item]
)
def put_competences(body: CompetenceList, principal: Admin, session: SessionDep) -> CompetenceList:
    """Admin only. Codes still used by staff, visits or templates cannot be removed (409)."""
    rows = tenants.replace_competences(
        session, principal.org_id, [(c.code, c.label) for c in body.competences]
    )
    audit.record(
        session,
        principal.org_id,
        actor=principal.actor,
        action="replace",
        target_type="competences",
        details={"count": len(rows)},
    )
    return CompetenceList(competences=[CompetenceEntry(code=c.code, label=c.label) for c in rows])


@router.get(
    "/api-keys", summary="List API keys", response_model=list[ApiKeyOut], responses=AUTH_ERRORS
)
def list_api_keys(principal: Admin, session: SessionDep) -> list[ApiKeyOut]:
    """Admin only. Keys of the organisation, newest first (the keys themselves are never shown)."""
    return [_key_out(k) for k in tenants.list_api_keys(session, principal.org_id)]


@router.post(
    "/api-keys",
    summary="Create an API key",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=WRITE_ERRORS,  # type: ignore[arg-type]
)
def create_api_key(body: ApiKeyCreate, principal: Admin, session: SessionDep) -> ApiKeyCreated:
    """Admin scope. The answer holds the key once; only its SHA-256 is stored.

    A key is never stronger than the caller (403 otherwise): its role ranks no higher than the
    caller's, its scopes are a subset of the caller's, and the caller reaches the whole
    organisation (keys do).
    """
    new = tenants.create_api_key(
        session, principal.org_id, name=body.name, role=body.role, scopes=body.scopes
    )
    # After the checks of the scopes themselves (422 for an unknown one); 403 rolls it back.
    authz.ensure_may_grant(
        principal,
        role=new.record.role,
        scopes=new.record.scopes,
        district_ids=None,
        what="API key",
    )
    audit.record(
        session,
        principal.org_id,
        actor=principal.actor,
        action="create",
        target_type="api_key",
        target_id=str(new.record.id),
    )
    return ApiKeyCreated(**_key_out(new.record).model_dump(), key=new.plaintext)


@router.delete(
    "/api-keys/{key_id}",
    summary="Revoke an API key",
    status_code=204,
    response_class=Response,
    responses=ITEM_ERRORS,
)
def revoke_api_key(key_id: RowId, principal: Admin, session: SessionDep) -> Response:
    """Admin only. Idempotent; the key stops working at once."""
    tenants.revoke_api_key(session, principal.org_id, key_id)
    audit.record(
        session,
        principal.org_id,
        actor=principal.actor,
        action="revoke",
        target_type="api_key",
        target_id=str(key_id),
    )
    return Response(status_code=204)

"""GET / PUT / DELETE of one care-data row by external id, shared by the resource routers.

This module deliberately has no ``from __future__ import annotations``: FastAPI reads the handler
annotations at definition time, and here they are the resource's own types, held in closures.
"""

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel

from app.api import authz
from app.api.deps import Reader, SessionDep, SettingsDep, Writer
from app.api.errors import ErrorBody
from app.errors import ErrorDetail, InvalidInput, NotFound
from app.planning.geocoding import region_place_locator
from app.store import audit, importing
from app.store.inputs import ImportBatch, PlanningDate
from app.store.repositories import DateFilter, Row

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
#: Bounded like a row id: an absurd offset is a 422, not a database overflow (fuzz finding).
Offset = Annotated[int, Query(ge=0, le=2_147_483_647, description="Rows to skip.")]
DistrictFilter = Annotated[
    str | None, Query(description="Only rows of this district (its external_id).")
]
#: An integer row id in a path (plans, API keys, users): bounded to the 32-bit column range so an
#: absurd id is a 422, not a database overflow.
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
DateQ = Annotated[PlanningDate | None, Query(description="Only this date.")]
DateFromQ = Annotated[PlanningDate | None, Query(description="Only on or after this date.")]
DateToQ = Annotated[PlanningDate | None, Query(description="Only on or before this date.")]

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing, unknown or revoked API key."},
    403: {"model": ErrorBody, "description": "The key lacks the required scope."},
}
READ_ERRORS = {**AUTH_ERRORS, 422: {"model": ErrorBody, "description": "Bad query parameter."}}
ITEM_ERRORS = {**AUTH_ERRORS, 404: {"model": ErrorBody, "description": "No such row."}}
WRITE_ERRORS = {
    **ITEM_ERRORS,
    413: {"model": ErrorBody, "description": "Body too large."},
    422: {"model": ErrorBody, "description": "Invalid row; every bad field is listed."},
}


def date_filter(
    date: dt.date | None, date_from: dt.date | None, date_to: dt.date | None
) -> DateFilter:
    """The repository's date filter from the query parameters."""
    return DateFilter(on=date, start=date_from, end=date_to)


def add_item_routes(
    router: APIRouter,
    *,
    resource: str,
    section: str,
    singular: str,
    in_model: type[BaseModel],
    out_model: type[BaseModel],
    to_out: Callable[[Row], Any],
) -> None:
    """Add ``GET/PUT/DELETE /{external_id}`` for one resource to ``router``."""
    external_id_path = Annotated[str, Path(min_length=1, max_length=100)]

    def get_item(external_id: external_id_path, principal: Reader, session: SessionDep) -> Any:
        return to_out(authz.repository(session, principal).get(resource, external_id))

    def put_item(
        external_id: external_id_path,
        body: in_model,  # type: ignore[valid-type]
        response: Response,
        principal: Writer,
        session: SessionDep,
        settings: SettingsDep,
    ) -> Any:
        authz.ensure_org_wide(principal)
        if body.external_id != external_id:  # type: ignore[attr-defined]
            msg = "the external_id in the body differs from the one in the path"
            detail = ErrorDetail(("external_id",), "external_id_mismatch", msg)
            raise InvalidInput(msg, [detail])
        repo = authz.repository(session, principal)
        try:
            repo.get(resource, external_id)
            existed = True
        except NotFound:
            existed = False
        try:
            result = importing.import_batch(
                session,
                principal.org_id,
                ImportBatch.model_validate({section: [body]}),
                locate=region_place_locator(settings.region_file, settings.osm_cache_dir),
            )
        except InvalidInput as exc:
            # Report field paths relative to the body, not to a one-row batch.
            details = [ErrorDetail(d.loc[2:] or d.loc, d.code, d.msg, d.ctx) for d in exc.details]
            raise InvalidInput(exc.message, details) from exc
        counts = result.sections[section]
        if counts.created or counts.updated:
            audit.record(
                session,
                principal.org_id,
                actor=principal.actor,
                action="upsert",
                target_type=singular,
                target_id=external_id,
            )
        response.status_code = 200 if existed else 201
        return to_out(repo.get(resource, external_id))

    def delete_item(
        external_id: external_id_path, principal: Writer, session: SessionDep
    ) -> Response:
        authz.ensure_org_wide(principal)
        authz.repository(session, principal).delete(resource, external_id)
        audit.record(
            session,
            principal.org_id,
            actor=principal.actor,
            action="delete",
            target_type=singular,
            target_id=external_id,
        )
        return Response(status_code=204)

    router.add_api_route(
        "/{external_id}",
        get_item,
        methods=["GET"],
        name=f"get_{singular}",
        summary=f"Get one {singular.replace('_', ' ')}",
        description=f"The {singular.replace('_', ' ')} with this external id (404 if none).",
        response_model=out_model,
        responses=ITEM_ERRORS,
    )
    router.add_api_route(
        "/{external_id}",
        put_item,
        methods=["PUT"],
        name=f"put_{singular}",
        summary=f"Create or replace one {singular.replace('_', ' ')}",
        description=(
            "Upsert by external id with the same rules as `POST /v1/import` (201 when created, "
            "200 when replaced). The body's `external_id` must equal the path's."
        ),
        response_model=out_model,
        responses={**WRITE_ERRORS, 201: {"model": out_model, "description": "Created."}},
    )
    router.add_api_route(
        "/{external_id}",
        delete_item,
        methods=["DELETE"],
        name=f"delete_{singular}",
        summary=f"Delete one {singular.replace('_', ' ')}",
        description="204 when deleted; 409 while other rows still refer to it.",
        status_code=204,
        response_class=Response,
        responses={**ITEM_ERRORS, 409: {"model": ErrorBody, "description": "Still referred to."}},
    )

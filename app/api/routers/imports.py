"""``POST /v1/import``: the care-record vendors' bulk upsert."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api import authz
from app.api.deps import SessionDep, SettingsDep, Writer
from app.api.errors import ErrorBody
from app.api.idempotency import IdempotencyKeyHeader, run_idempotent
from app.api.routing import StrictJSONRoute
from app.planning.geocoding import region_place_locator
from app.store import audit, importing
from app.store.inputs import ImportBatch

router = APIRouter(prefix="/v1", tags=["import"], route_class=StrictJSONRoute)

ERRORS = {
    401: {"model": ErrorBody, "description": "Missing, unknown or revoked API key."},
    403: {"model": ErrorBody, "description": "The key lacks the `write` scope."},
    413: {"model": ErrorBody, "description": "The body is larger than MAX_BODY_BYTES."},
    422: {
        "model": ErrorBody,
        "description": "One or more rows are invalid (every bad field is listed); nothing stored.",
    },
}


class Counts(BaseModel):
    """Rows created, updated (something changed) and unchanged (identical to what was stored)."""

    created: int = Field(examples=[12])
    updated: int = Field(examples=[3])
    unchanged: int = Field(examples=[240])


class ImportReport(BaseModel):
    """What a batch did, per section and in total."""

    sections: dict[str, Counts]
    total: Counts


def _report(result: importing.ImportResult) -> ImportReport:
    def counts(c: importing.SectionCounts) -> Counts:
        return Counts(created=c.created, updated=c.updated, unchanged=c.unchanged)

    return ImportReport(
        sections={name: counts(c) for name, c in result.sections.items()},
        total=counts(result.total),
    )


@router.post(
    "/import",
    summary="Upsert clients, staff, shifts, visits and templates in one batch",
    response_model=ImportReport,
    responses=ERRORS,  # type: ignore[arg-type]
)
def import_care_records(
    batch: ImportBatch,
    request: Request,
    principal: Writer,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ImportReport | JSONResponse:
    """Create or update every row of the batch by its `external_id`, all or nothing.

    Sections are applied in dependency order (districts, teams, staff, clients, templates, visits,
    shifts) and may refer to rows of the same batch or to rows already stored. A row replaces the
    stored row with the same `external_id`; rows not in the batch are left alone. Sending the same
    batch again changes nothing and reports every row as `unchanged`.

    If any row is invalid (bad coordinates, a window ending before it starts, a visit longer than
    all its windows, an unknown competence or reference, a repeated `external_id`...), the answer
    is 422 with one entry per bad field (`path` such as `visits[3].windows[0].end`) and nothing of
    the batch is stored.
    """

    authz.ensure_org_wide(principal)

    def work() -> ImportReport:
        locate = region_place_locator(settings.region_file, settings.osm_cache_dir)
        result = importing.import_batch(session, principal.org_id, batch, locate=locate)
        report = _report(result)
        audit.record(
            session,
            principal.org_id,
            actor=principal.actor,
            action="import",
            target_type="batch",
            details=report.model_dump()["total"],
        )
        return report

    return run_idempotent(request, session, principal, idempotency_key, batch, work)

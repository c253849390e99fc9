"""Bulk upsert of care-record rows by external id: validate everything first, then write.

Semantics (documented for vendors in docs/api.md):

* A row replaces the stored row with the same ``external_id`` (fields left out take their
  defaults); rows not in the batch are left alone.
* References (``district``, ``client``, ``staff``, ``pinned_carer`` ...) may point at rows of the
  same batch or at rows already stored for the organisation.
* Every problem of the batch is collected before anything is written; with one problem the whole
  batch is refused (:class:`app.errors.InvalidInput` with one detail per bad field), so the
  caller's transaction holds all of the batch or none of it.
* Sending the same batch again changes nothing and reports every row as ``unchanged``.

The functions only ``flush()``; the request layer commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import ErrorDetail, InvalidInput, Loc
from app.store import tenants
from app.store.inputs import (
    ClientIn,
    ImportBatch,
    PlaceAddress,
    ShiftIn,
    StaffIn,
    TeamIn,
    VisitIn,
    VisitTemplateIn,
)
from app.store.models import (
    Base,
    Client,
    ClientPreferredStaff,
    CoordinateSource,
    District,
    GeocodePrecision,
    Shift,
    Staff,
    Team,
    Visit,
    VisitTemplate,
)

_CHUNK = 500
#: Sections in the order they are applied (each may refer to the ones before it).
SECTIONS = ("districts", "teams", "staff", "clients", "templates", "visits", "shifts")
M = TypeVar("M", bound=Base)


@dataclass(slots=True)
class SectionCounts:
    """What one section of a batch did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(slots=True)
class ImportResult:
    """Counts per section, in the order the sections were applied."""

    sections: dict[str, SectionCounts] = field(default_factory=dict)

    @property
    def total(self) -> SectionCounts:
        """The sum over all sections."""
        out = SectionCounts()
        for c in self.sections.values():
            out.created += c.created
            out.updated += c.updated
            out.unchanged += c.unchanged
        return out


@dataclass(frozen=True, slots=True)
class PlaceLookup:
    """What geocoding one place address (a carer's start or end) gave.

    ``status`` is the geocoder's (``matched``, ``ambiguous``, ``not_found``) or ``unavailable``
    when no address index could be loaded; only a matched lookup has coordinates.
    """

    status: Literal["matched", "ambiguous", "not_found", "unavailable"]
    lat: float | None = None
    lon: float | None = None
    quality: float = 0.0
    precision: GeocodePrecision | None = None
    candidates: int = 0


#: Geocodes a place address; supplied by the caller (the API uses the region's offline index).
PlaceLocator = Callable[[PlaceAddress], PlaceLookup]

_PLACE_PROBLEMS = {
    "ambiguous": ("address_ambiguous", "the address matches several places; add postcode or city"),
    "not_found": ("address_not_found", "the address is not in the address index"),
    "unavailable": ("geocoder_unavailable", "no address index is loaded; send coordinates"),
}


def unknown_competence(loc: Loc, code: str, vocab: Iterable[str]) -> ErrorDetail:
    """The ``unknown_competence`` problem at ``loc``, listing the codes that are allowed.

    The list (``ctx.allowed``, sorted) lets a care-record vendor map its own codes without asking
    an administrator: it is the organisation's vocabulary, never input data.
    """
    return ErrorDetail(
        loc,
        "unknown_competence",
        f"{code!r} is not in the organisation's competence list (see ctx.allowed)",
        {"allowed": sorted(vocab)},
    )


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _windows(ws: Iterable[Any]) -> list[list[int]]:
    return [[w.start, w.end] for w in ws]


class _Importer:
    """One batch for one organisation: lookups, validation, then upserts in dependency order."""

    def __init__(
        self,
        session: Session,
        org_id: int,
        batch: ImportBatch,
        locate: PlaceLocator | None = None,
    ) -> None:
        self.s = session
        self.org_id = org_id
        self.b = batch
        self.locate = locate
        #: Geocoded carers' places by (staff row index, "start" | "end").
        self.places: dict[tuple[int, str], PlaceLookup] = {}
        self.errors: list[ErrorDetail] = []
        #: Stored rows by external id (loaded for every id the batch defines or mentions).
        self.stored: dict[type[Base], dict[str, Any]] = {}
        self.ids: dict[type[Base], dict[str, int]] = defaultdict(dict)
        self.created: dict[str, set[str]] = defaultdict(set)
        self.changed: dict[str, set[str]] = defaultdict(set)

    # -- lookups ---------------------------------------------------------------------------

    def _load(self, model: type[Base], ext_ids: Iterable[str]) -> None:
        wanted = sorted(set(ext_ids))
        found: dict[str, Any] = {}
        col = model.external_id  # type: ignore[attr-defined]
        org = model.org_id  # type: ignore[attr-defined]
        for chunk in _chunks(wanted):
            for row in self.s.scalars(select(model).where(org == self.org_id, col.in_(chunk))):
                found[getattr(row, "external_id")] = row  # noqa: B009 - any model with external_id
        self.stored[model] = found

    def _load_all(self) -> None:
        b = self.b
        self._load(District, [d.external_id for d in b.districts] + self._mentioned_districts())
        self._load(
            Team,
            [t.external_id for t in b.teams]
            + [s.team for s in b.staff if s.team]
            + [c.allowed_team for c in b.clients if c.allowed_team],
        )
        self._load(
            Staff,
            [s.external_id for s in b.staff]
            + [p for c in b.clients for p in c.preferred_carers]
            + [v.pinned_carer for v in b.visits if v.pinned_carer]
            + [sh.staff for sh in b.shifts],
        )
        self._load(
            Client,
            [c.external_id for c in b.clients]
            + [v.client for v in b.visits]
            + [t.client for t in b.templates],
        )
        self._load(
            VisitTemplate,
            [t.external_id for t in b.templates] + [v.template for v in b.visits if v.template],
        )
        self._load(
            Visit,
            [v.external_id for v in b.visits]
            + [v.depends_on.visit for v in b.visits if v.depends_on],
        )
        self._load(Shift, [sh.external_id for sh in b.shifts])

    def _mentioned_districts(self) -> list[str]:
        b = self.b
        return (
            [t.district for t in b.teams]
            + [s.district for s in b.staff]
            + [c.district for c in b.clients]
        )

    # -- validation ------------------------------------------------------------------------

    def _err(self, loc: tuple[str | int, ...], code: str, msg: str) -> None:
        self.errors.append(ErrorDetail(loc, code, msg))

    def _check_duplicates(self, section: str, rows: Sequence[Any]) -> None:
        first: dict[str, int] = {}
        for i, row in enumerate(rows):
            if row.external_id in first:
                self._err(
                    (section, i, "external_id"),
                    "duplicate_external_id",
                    f"external_id {row.external_id!r} repeats {section}[{first[row.external_id]}]",
                )
            else:
                first[row.external_id] = i

    def _known(self, model: type[Base], batch_rows: Sequence[Any]) -> set[str]:
        return set(self.stored[model]) | {r.external_id for r in batch_rows}

    def _check_ref(
        self, loc: tuple[str | int, ...], value: str | None, known: set[str], what: str
    ) -> None:
        if value is not None and value not in known:
            self._err(loc, f"unknown_{what}", f"no {what} with external_id {value!r}")

    def _check_competences(
        self, section: str, i: int, codes: Sequence[str], vocab: frozenset[str]
    ) -> None:
        for j, code in enumerate(codes):
            if code not in vocab:
                self.errors.append(unknown_competence((section, i, "competences", j), code, vocab))

    def validate(self) -> None:
        b = self.b
        for section in SECTIONS:
            self._check_duplicates(section, getattr(b, section))
        vocab = tenants.competence_codes(self.s, self.org_id)
        districts = self._known(District, b.districts)
        teams = self._known(Team, b.teams)
        staff = self._known(Staff, b.staff)
        clients = self._known(Client, b.clients)
        templates = self._known(VisitTemplate, b.templates)
        visits = self._known(Visit, b.visits)
        for i, t in enumerate(b.teams):
            self._check_ref(("teams", i, "district"), t.district, districts, "district")
        for i, st in enumerate(b.staff):
            self._check_ref(("staff", i, "district"), st.district, districts, "district")
            self._check_ref(("staff", i, "team"), st.team, teams, "team")
            self._check_competences("staff", i, st.competences, vocab)
            self._locate_places(i, st)
        for i, c in enumerate(b.clients):
            self._check_ref(("clients", i, "district"), c.district, districts, "district")
            self._check_ref(("clients", i, "allowed_team"), c.allowed_team, teams, "team")
            for j, p in enumerate(c.preferred_carers):
                self._check_ref(("clients", i, "preferred_carers", j), p, staff, "staff")
        for i, tpl in enumerate(b.templates):
            self._check_ref(("templates", i, "client"), tpl.client, clients, "client")
            self._check_competences("templates", i, tpl.competences, vocab)
        self._validate_visits(clients, staff, templates, visits, vocab)
        for i, sh in enumerate(b.shifts):
            self._check_ref(("shifts", i, "staff"), sh.staff, staff, "staff")
        if self.errors:
            n = len({e.loc[:2] for e in self.errors})
            msg = f"{n} row(s) of the batch are invalid; nothing was stored"
            raise InvalidInput(msg, self.errors)

    def _locate_places(self, i: int, st: StaffIn) -> None:
        """Geocode the carer's start and end addresses that come without coordinates."""
        for which, coords, address in (
            ("start", st.start, st.start_address),
            ("end", st.end, st.end_address),
        ):
            if coords is not None or address is None:
                continue
            found = PlaceLookup("unavailable") if self.locate is None else self.locate(address)
            if found.status == "matched" and found.lat is not None and found.lon is not None:
                self.places[(i, which)] = found
                continue
            code, msg = _PLACE_PROBLEMS.get(found.status, _PLACE_PROBLEMS["not_found"])
            ctx = {"candidates": found.candidates} if found.status == "ambiguous" else None
            self.errors.append(ErrorDetail(("staff", i, f"{which}_address"), code, msg, ctx))

    def _validate_visits(
        self,
        clients: set[str],
        staff: set[str],
        templates: set[str],
        visits: set[str],
        vocab: frozenset[str],
    ) -> None:
        client_of = {ext: v.client_id for ext, v in self.stored[Visit].items()}
        stored_client_ext = {c.id: ext for ext, c in self.stored[Client].items()}
        batch_client_of = {v.external_id: v.client for v in self.b.visits}
        for i, v in enumerate(self.b.visits):
            self._check_ref(("visits", i, "client"), v.client, clients, "client")
            self._check_ref(("visits", i, "pinned_carer"), v.pinned_carer, staff, "staff")
            self._check_ref(("visits", i, "template"), v.template, templates, "template")
            self._check_competences("visits", i, v.competences, vocab)
            dep = v.depends_on
            if dep is None:
                continue
            loc = ("visits", i, "depends_on", "visit")
            if dep.visit == v.external_id:
                self._err(loc, "dependency_on_itself", "a visit cannot depend on itself")
            elif dep.visit not in visits:
                self._check_ref(loc, dep.visit, visits, "visit")
            else:
                other = batch_client_of.get(dep.visit) or stored_client_ext.get(
                    client_of.get(dep.visit, -1)
                )
                # Only when both clients are known: an unknown one is reported on its own.
                if other in clients and v.client in clients and other != v.client:
                    self._err(
                        loc,
                        "dependency_other_client",
                        "a visit can only depend on another visit of the same client",
                    )

    # -- upserts ---------------------------------------------------------------------------

    def _upsert(
        self,
        section: str,
        model: type[M],
        rows: Sequence[Any],
        values: Callable[[Any], dict[str, Any]],
    ) -> None:
        stored = self.stored[model]
        for row in rows:
            vals = values(row)
            obj = stored.get(row.external_id)
            if obj is None:
                obj = model(org_id=self.org_id, external_id=row.external_id, **vals)
                self.s.add(obj)
                stored[row.external_id] = obj
                self.created[section].add(row.external_id)
                continue
            changed = {k: v for k, v in vals.items() if getattr(obj, k) != v}
            for k, v in changed.items():
                setattr(obj, k, v)
            if changed:
                self.changed[section].add(row.external_id)
        self.s.flush()
        self.ids[model] = {ext: o.id for ext, o in stored.items()}

    def _id(self, model: type[Base], ext: str | None) -> int | None:
        return None if ext is None else self.ids[model][ext]

    def apply(self) -> ImportResult:
        b = self.b
        for model, found in self.stored.items():
            self.ids[model] = {ext: o.id for ext, o in found.items()}
        self._upsert("districts", District, b.districts, lambda d: {"name": d.name})
        self._upsert("teams", Team, b.teams, self._team_values)
        row_of = {id(st): i for i, st in enumerate(b.staff)}
        self._upsert("staff", Staff, b.staff, lambda st: self._staff_values(row_of[id(st)], st))
        self._upsert("clients", Client, b.clients, self._client_values)
        self._apply_preferred()
        self._upsert("templates", VisitTemplate, b.templates, self._template_values)
        self._upsert("visits", Visit, b.visits, self._visit_values)
        self._apply_dependencies()
        self._upsert("shifts", Shift, b.shifts, self._shift_values)
        result = ImportResult()
        for section in SECTIONS:
            n = len(getattr(b, section))
            created = len(self.created[section])
            updated = len(self.changed[section] - self.created[section])
            result.sections[section] = SectionCounts(created, updated, n - created - updated)
        return result

    def _team_values(self, t: TeamIn) -> dict[str, Any]:
        return {"name": t.name, "district_id": self._id(District, t.district)}

    def _place(
        self,
        i: int,
        which: str,
        coords: Any,
        address: PlaceAddress | None,
        source: CoordinateSource | None,
    ) -> tuple[float, float, dict[str, Any] | None, CoordinateSource] | None:
        """(lat, lon, address JSON, source) of a carer's start or end; None if not given."""
        stored = None if address is None else address.model_dump(mode="json")
        if coords is not None:  # the care record's coordinates win
            return coords.lat, coords.lon, stored, source or CoordinateSource.CARE_RECORD
        found = self.places.get((i, which))
        if found is None or stored is None or found.lat is None or found.lon is None:
            return None
        stored["geocode_quality"] = round(found.quality, 3)
        stored["geocode_precision"] = None if found.precision is None else found.precision.value
        return found.lat, found.lon, stored, CoordinateSource.GEOCODED

    def _staff_values(self, i: int, st: StaffIn) -> dict[str, Any]:
        start = self._place(i, "start", st.start, st.start_address, st.start_source)
        if start is None:  # pragma: no cover - validate() refused the row
            msg = f"staff[{i}] has no start"
            raise InvalidInput(msg)
        # Without an end of its own the day ends where it starts (the address is not repeated).
        end = self._place(i, "end", st.end, st.end_address, st.end_source) or (
            *start[:2],
            None,
            start[3],
        )
        return {
            "district_id": self._id(District, st.district),
            "team_id": self._id(Team, st.team),
            "name": st.name,
            "competences": sorted(set(st.competences)),
            "travel_mode": st.travel_mode,
            "start_lat": start[0],
            "start_lon": start[1],
            "end_lat": end[0],
            "end_lon": end[1],
            "active": st.active,
            "start_address": start[2],
            "end_address": end[2],
            "start_source": start[3],
            "end_source": end[3],
        }

    def _client_values(self, c: ClientIn) -> dict[str, Any]:
        source = c.coordinate_source
        if c.coordinates is not None and source is None:
            source = CoordinateSource.CARE_RECORD
        return {
            "district_id": self._id(District, c.district),
            "street": c.street,
            "housenumber": c.housenumber,
            "postcode": c.postcode,
            "city": c.city,
            "lat": c.coordinates.lat if c.coordinates else None,
            "lon": c.coordinates.lon if c.coordinates else None,
            "coordinate_source": source if c.coordinates else None,
            "geocode_quality": c.geocode_quality,
            "allowed_team_id": self._id(Team, c.allowed_team),
            "notes": c.notes,
            "active": c.active,
            "display_name": c.display_name,
            "geocode_precision": c.geocode_precision if c.coordinates else None,
        }

    def _apply_preferred(self) -> None:
        rows = self.b.clients
        client_ids = [self.ids[Client][c.external_id] for c in rows]
        links: dict[int, list[ClientPreferredStaff]] = defaultdict(list)
        for i in range(0, len(client_ids), _CHUNK):
            stmt = (
                select(ClientPreferredStaff)
                .where(ClientPreferredStaff.client_id.in_(client_ids[i : i + _CHUNK]))
                .order_by(ClientPreferredStaff.client_id, ClientPreferredStaff.rank)
            )
            for link in self.s.scalars(stmt):
                links[link.client_id].append(link)
        for c, cid in zip(rows, client_ids, strict=True):
            wanted = list(dict.fromkeys(self.ids[Staff][p] for p in c.preferred_carers))
            if wanted == [link.staff_id for link in links[cid]]:
                continue
            for link in links[cid]:
                self.s.delete(link)
            self.s.flush()
            self.s.add_all(
                ClientPreferredStaff(client_id=cid, staff_id=sid, rank=rank)
                for rank, sid in enumerate(wanted)
            )
            self.changed["clients"].add(c.external_id)
        self.s.flush()

    def _template_values(self, t: VisitTemplateIn) -> dict[str, Any]:
        return {
            "client_id": self._id(Client, t.client),
            "weekdays": sorted(set(t.weekdays)),
            "windows": _windows(t.windows),
            "duration_s": t.duration_minutes * 60,
            "competences": sorted(set(t.competences)),
            "priority": t.priority,
            "carers_required": t.carers_required,
            "valid_from": t.valid_from,
            "valid_to": t.valid_to,
        }

    def _visit_values(self, v: VisitIn) -> dict[str, Any]:
        dep = v.depends_on
        return {
            "client_id": self._id(Client, v.client),
            "date": v.date,
            "windows": _windows(v.windows),
            "duration_s": v.duration_minutes * 60,
            "competences": sorted(set(v.competences)),
            "priority": v.priority,
            "carers_required": v.carers_required,
            "pinned_staff_id": self._id(Staff, v.pinned_carer),
            "dependency_min_gap_s": dep.min_gap_minutes * 60 if dep else None,
            "dependency_max_gap_s": (
                dep.max_gap_minutes * 60 if dep and dep.max_gap_minutes is not None else None
            ),
            "status": v.status,
            "template_id": self._id(VisitTemplate, v.template),
        }

    def _apply_dependencies(self) -> None:
        # Dependencies may point at visits created in this batch, so they are set once every
        # visit of the batch exists.
        for v in self.b.visits:
            obj = self.stored[Visit][v.external_id]
            target = self._id(Visit, v.depends_on.visit) if v.depends_on else None
            if obj.depends_on_visit_id != target:
                obj.depends_on_visit_id = target
                self.changed["visits"].add(v.external_id)
        self.s.flush()

    def _shift_values(self, sh: ShiftIn) -> dict[str, Any]:
        return {
            "staff_id": self._id(Staff, sh.staff),
            "date": sh.date,
            "start_s": sh.start,
            "end_s": sh.end,
            "breaks": [
                {"windows": _windows(br.windows), "duration_s": br.duration_minutes * 60}
                for br in sh.breaks
            ],
        }

    def run(self) -> ImportResult:
        self._load_all()
        self.validate()
        return self.apply()


def import_batch(
    session: Session, org_id: int, batch: ImportBatch, *, locate: PlaceLocator | None = None
) -> ImportResult:
    """Validate and upsert ``batch`` for ``org_id``; flushes, never commits.

    ``locate`` geocodes carers' start and end addresses sent without coordinates; without it
    such a row is refused (``geocoder_unavailable``).

    Raises
    ------
    InvalidInput
        With one :class:`ErrorDetail` per bad field (e.g. ``visits[3].client``) when any row
        refers to something unknown, repeats an external id or uses an unknown competence.
    """
    return _Importer(session, org_id, batch, locate).run()

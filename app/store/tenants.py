"""Organisations, their competence vocabulary and their API keys.

API keys are 32 random bytes (urlsafe base64, prefixed ``hc_``); only the SHA-256 of a key is
stored, so a database leak does not leak credentials. A key of that entropy needs no slow hash.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.errors import ErrorDetail as Detail
from app.store.models import ApiKey, Competence, Organisation, Role, Staff, Visit, VisitTemplate
from app.store.models import utcnow as _now

KEY_PREFIX = "hc_"

#: Seed vocabulary: NL care levels (helpende .. HBO nurse) and the reserved or skilled acts that
#: decide who may do a visit. Organisations replace it with their own list.
DEFAULT_COMPETENCES: tuple[tuple[str, str], ...] = (
    ("level2", "Level 2: helpende / SOSU-hjælper"),
    ("level3", "Level 3: verzorgende-IG / SOSU-assistent"),
    ("level4", "Level 4: MBO nurse"),
    ("level5", "Level 5: HBO nurse / sygeplejerske"),
    ("adl", "Personal care (washing, dressing)"),
    ("medication", "Medication administration"),
    ("insulin", "Insulin injection"),
    ("injection", "Other injections (reserved act)"),
    ("wound_care", "Wound care"),
    ("catheter", "Catheter care"),
    ("stoma", "Stoma care"),
    ("palliative", "Palliative care"),
    ("hoist", "Hoist transfer"),
)

#: What each scope allows; the ``admin`` role implies all of them.
SCOPES: tuple[str, ...] = ("read", "write", "plan", "admin")
DEFAULT_SCOPES_BY_ROLE: dict[Role, tuple[str, ...]] = {
    Role.ADMIN: SCOPES,
    Role.PLANNER: ("read", "write", "plan"),
    Role.NURSE: ("read",),
}


def hash_key(plaintext: str) -> str:
    """The stored form of an API key (hex SHA-256)."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def create_organisation(session: Session, name: str, *, timezone: str) -> Organisation:
    """Create an organisation with the default competence vocabulary (flushes, never commits)."""
    org = Organisation(name=name, timezone=timezone)
    session.add(org)
    session.flush()
    session.add_all(Competence(org_id=org.id, code=c, label=lbl) for c, lbl in DEFAULT_COMPETENCES)
    session.flush()
    return org


def get_organisation(session: Session, org_id: int) -> Organisation:
    """The organisation ``org_id``; :class:`NotFound` if it does not exist."""
    org = session.get(Organisation, org_id)
    if org is None:
        msg = "organisation not found"
        raise NotFound(msg)
    return org


def competences(session: Session, org_id: int) -> list[Competence]:
    """The organisation's competence vocabulary, sorted by code."""
    stmt = select(Competence).where(Competence.org_id == org_id).order_by(Competence.code)
    return list(session.scalars(stmt))


def competence_codes(session: Session, org_id: int) -> frozenset[str]:
    """Just the codes of the vocabulary."""
    stmt = select(Competence.code).where(Competence.org_id == org_id)
    return frozenset(session.scalars(stmt))


def _codes_in_use(session: Session, org_id: int) -> set[str]:
    used: set[str] = set()
    for model in (Staff, Visit, VisitTemplate):
        stmt = select(model.competences).where(model.org_id == org_id).distinct()
        for codes in session.scalars(stmt):
            used.update(codes)
    return used


def replace_competences(
    session: Session, org_id: int, entries: Sequence[tuple[str, str]]
) -> list[Competence]:
    """Set the vocabulary to ``entries`` ((code, label) pairs).

    Raises :class:`InvalidInput` for duplicate codes and :class:`Conflict` when a code still used by
    staff, visits or templates would disappear.
    """
    seen: dict[str, int] = {}
    dupes = []
    for i, (code, _) in enumerate(entries):
        if code in seen:
            dupes.append(Detail(("competences", i, "code"), "duplicate", f"{code!r} repeats"))
        seen[code] = i
    if dupes:
        msg = "duplicate competence codes"
        raise InvalidInput(msg, dupes)
    missing = sorted(_codes_in_use(session, org_id) - seen.keys())
    if missing:
        msg = f"competences still in use cannot be removed: {', '.join(missing)}"
        raise Conflict(msg)
    current = {c.code: c for c in competences(session, org_id)}
    for code, comp in current.items():
        if code not in seen:
            session.delete(comp)
    for code, label in entries:
        if code in current:
            current[code].label = label
        else:
            session.add(Competence(org_id=org_id, code=code, label=label))
    session.flush()
    return competences(session, org_id)


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly created key: ``plaintext`` is shown once and never stored."""

    record: ApiKey
    plaintext: str


def create_api_key(
    session: Session,
    org_id: int,
    *,
    name: str,
    role: Role = Role.ADMIN,
    scopes: Iterable[str] | None = None,
) -> NewApiKey:
    """Create an API key for ``org_id``; returns the plaintext once (flushes, never commits)."""
    chosen = tuple(scopes) if scopes is not None else DEFAULT_SCOPES_BY_ROLE[role]
    unknown = sorted(set(chosen) - set(SCOPES))
    if unknown:
        msg = f"unknown scopes: {', '.join(unknown)}"
        raise InvalidInput(msg, [Detail(("scopes",), "unknown_scope", msg)])
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        org_id=org_id,
        name=name,
        prefix=plaintext[:11],
        key_hash=hash_key(plaintext),
        role=role,
        scopes=sorted(set(chosen)),
    )
    session.add(record)
    session.flush()
    return NewApiKey(record=record, plaintext=plaintext)


def find_active_key(session: Session, plaintext: str) -> ApiKey | None:
    """The unrevoked key whose hash matches ``plaintext``, if any."""
    stmt = select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext), ApiKey.revoked_at.is_(None))
    return session.scalars(stmt).first()


def list_api_keys(session: Session, org_id: int) -> list[ApiKey]:
    """Every key of the organisation, newest first (revoked ones included)."""
    stmt = select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.id.desc())
    return list(session.scalars(stmt))


def revoke_api_key(session: Session, org_id: int, key_id: int) -> ApiKey:
    """Revoke a key of ``org_id`` (idempotent); :class:`NotFound` for another tenant's key."""
    key = session.scalars(
        select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.id == key_id)
    ).first()
    if key is None:
        msg = "API key not found"
        raise NotFound(msg)
    if key.revoked_at is None:
        key.revoked_at = _now()
        session.flush()
    return key


def count_organisations(session: Session) -> int:
    """How many organisations exist (used by the CLI's demo seeding)."""
    return int(session.scalar(select(func.count()).select_from(Organisation)) or 0)

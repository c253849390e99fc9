"""People who sign in: users, their password hashes, a planner's districts and a nurse's staff link.

Passwords are hashed with scrypt (memory-hard; ``hashlib.scrypt``, no extra dependency), in the
self-describing form ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` so the cost can be raised later without
breaking stored hashes. Emails are stored lower-cased and are unique across organisations (a
person signs in with their email alone). Every function takes the organisation id and filters by
it; a user of another tenant is :class:`NotFound`, never visible.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.errors import ErrorDetail as Detail
from app.store.models import District, Role, Staff, User, UserDistrict
from app.store.models import utcnow as _now

#: scrypt cost: 2**14 x 8 x 1 uses 16 MiB and ~40 ms per hash (the OWASP minimum for scrypt).
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SCHEME = "scrypt"
MIN_PASSWORD_LENGTH = 12


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """The stored form of ``password`` (scrypt with a random 16-byte salt)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"{_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time compare; False for no hash)."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != _SCHEME:
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the email is unknown, so a wrong email costs as long as a wrong
    # password and response times do not tell which emails exist.
    return hash_password(secrets.token_urlsafe(16))


def generate_password() -> str:
    """A random password for a new user (about 128 bits), shown once."""
    return secrets.token_urlsafe(16)


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding blanks."""
    return email.strip().lower()


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        msg = f"the password must be at least {MIN_PASSWORD_LENGTH} characters long"
        raise InvalidInput(msg, [Detail(("password",), "password_too_short", msg)])


@dataclass(frozen=True, slots=True)
class UserView:
    """A user with the external ids of their districts and staff row (what the API shows)."""

    user: User
    districts: list[str]
    staff: str | None


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The enabled user with this email and password, or None (same cost either way)."""
    user = session.scalars(select(User).where(User.email == normalise_email(email))).first()
    if user is None:
        verify_password(password, _dummy_hash())
        return None
    if not verify_password(password, user.password_hash) or user.disabled_at is not None:
        return None
    return user


def active_user(session: Session, user_id: int, org_id: int) -> User | None:
    """The user ``user_id`` of ``org_id`` if it exists and is not disabled."""
    user = session.get(User, user_id)
    if user is None or user.org_id != org_id or user.disabled_at is not None:
        return None
    return user


def district_ids(session: Session, user_id: int) -> frozenset[int]:
    """The ids of the districts a (planner) user may see."""
    stmt = select(UserDistrict.district_id).where(UserDistrict.user_id == user_id)
    return frozenset(session.scalars(stmt))


def _district_ids_by_external(
    session: Session, org_id: int, external_ids: Sequence[str]
) -> list[int]:
    stmt = select(District.external_id, District.id).where(
        District.org_id == org_id, District.external_id.in_(external_ids)
    )
    rows: dict[str, int] = {}
    for ext, did in session.execute(stmt):
        rows[ext] = did
    bad = [
        Detail(("districts", i), "unknown_district", f"no district {ext!r}")
        for i, ext in enumerate(external_ids)
        if ext not in rows
    ]
    if bad:
        msg = "unknown district(s)"
        raise InvalidInput(msg, bad)
    return [rows[ext] for ext in dict.fromkeys(external_ids)]


def _staff_id_by_external(session: Session, org_id: int, external_id: str) -> int:
    sid = session.scalar(
        select(Staff.id).where(Staff.org_id == org_id, Staff.external_id == external_id)
    )
    if sid is None:
        msg = f"no staff member {external_id!r}"
        raise InvalidInput(msg, [Detail(("staff",), "unknown_staff", msg)])
    return sid


def get_user(session: Session, org_id: int, user_id: int) -> User:
    """The user ``user_id`` of ``org_id``; :class:`NotFound` otherwise (also for other tenants)."""
    user = session.scalars(select(User).where(User.org_id == org_id, User.id == user_id)).first()
    if user is None:
        msg = "user not found"
        raise NotFound(msg)
    return user


def create_user(
    session: Session,
    org_id: int,
    *,
    email: str,
    role: Role,
    password: str,
    staff: str | None = None,
    districts: Iterable[str] = (),
) -> User:
    """Create a user (flushes, never commits).

    ``staff`` is the external id of a nurse's staff row, ``districts`` the external ids of a
    planner's districts. :class:`Conflict` when the email is taken (in any organisation).
    """
    _check_password(password)
    address = normalise_email(email)
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        msg = "a user with this email exists"
        raise Conflict(msg)
    district_list = list(districts)
    district_ids_ = _district_ids_by_external(session, org_id, district_list)
    staff_id = _staff_id_by_external(session, org_id, staff) if staff is not None else None
    user = User(
        org_id=org_id,
        email=address,
        role=role,
        staff_id=staff_id,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    session.add_all(UserDistrict(user_id=user.id, district_id=d) for d in district_ids_)
    session.flush()
    return user


def view(session: Session, user: User) -> UserView:
    """``user`` with the external ids of its districts and staff row."""
    districts = list(
        session.scalars(
            select(District.external_id)
            .join(UserDistrict, UserDistrict.district_id == District.id)
            .where(UserDistrict.user_id == user.id)
            .order_by(District.external_id)
        )
    )
    staff = (
        session.scalar(select(Staff.external_id).where(Staff.id == user.staff_id))
        if user.staff_id is not None
        else None
    )
    return UserView(user=user, districts=districts, staff=staff)


def reach(session: Session, user: User) -> frozenset[int] | None:
    """The district ids ``user`` reaches: None for an admin (the whole organisation), a planner's
    districts, a nurse's staff row's district (none without a staff link)."""
    if user.role is Role.ADMIN:
        return None
    if user.role is Role.PLANNER:
        return district_ids(session, user.id)
    if user.staff_id is None:
        return frozenset()
    district = session.scalar(select(Staff.district_id).where(Staff.id == user.staff_id))
    return frozenset() if district is None else frozenset({district})


def list_users(session: Session, org_id: int) -> list[User]:
    """Every user of the organisation, by id."""
    return list(session.scalars(select(User).where(User.org_id == org_id).order_by(User.id)))


def set_disabled(session: Session, org_id: int, user_id: int, *, disabled: bool) -> User:
    """Disable (tokens stop working at once) or re-enable a user; idempotent."""
    user = get_user(session, org_id, user_id)
    if disabled and user.disabled_at is None:
        user.disabled_at = _now()
    elif not disabled:
        user.disabled_at = None
    session.flush()
    return user


def set_districts(session: Session, org_id: int, user_id: int, districts: Sequence[str]) -> User:
    """Replace the districts of a user (external ids of ``org_id``'s districts)."""
    user = get_user(session, org_id, user_id)
    ids = _district_ids_by_external(session, org_id, districts)
    session.execute(delete(UserDistrict).where(UserDistrict.user_id == user.id))
    session.add_all(UserDistrict(user_id=user.id, district_id=d) for d in ids)
    session.flush()
    return user


def set_staff(session: Session, org_id: int, user_id: int, staff: str | None) -> User:
    """Link a user to a staff row of ``org_id`` (its external id), or unlink with None."""
    user = get_user(session, org_id, user_id)
    user.staff_id = _staff_id_by_external(session, org_id, staff) if staff is not None else None
    session.flush()
    return user


def set_password(session: Session, org_id: int, user_id: int, password: str) -> User:
    """Replace a user's password."""
    _check_password(password)
    user = get_user(session, org_id, user_id)
    user.password_hash = hash_password(password)
    session.flush()
    return user

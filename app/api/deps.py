"""Dependencies every handler uses: settings, the request's session, the caller (``Principal``).

The request owns the transaction: :func:`get_session` commits when the handler returns normally
and rolls back when it raises, before the response is sent. Repositories and services only flush.
Authentication and tenant scoping happen here and only here: every handler that touches tenant
data takes a :data:`CurrentPrincipal` (or a scoped alias) and passes ``principal.org_id`` down
(through :func:`app.api.authz.repository`, which also narrows a planner to their districts).

A credential is an API key (integrations; ``X-API-Key`` or ``Authorization: Bearer hc_...``) or a
person's sign-in token (``Authorization: Bearer <JWT>`` from ``POST /v1/auth/token``). Nurses
are refused by the dependency itself everywhere except endpoints marked :data:`OWN_ROUTE`.

A verified credential is remembered for ``AUTH_CACHE_TTL_S`` seconds (default 5, per process,
:class:`PrincipalCache`): within that time a revoked API key, or a disabled or re-roled user,
may still be served; after it the row is read again. A token is never trusted past its ``exp``.
A change committed in this process (revoking a key, disabling a user) empties the caches at once.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlalchemy import event, update
from sqlalchemy.orm import Session, sessionmaker

from app.api import ratelimit, security
from app.errors import Forbidden, Unauthenticated
from app.settings import Settings
from app.store import tenants, users
from app.store.models import ApiKey, Role, User, UserDistrict, utcnow


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; commit on success, roll back on error."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
#: ``scope="function"`` makes the commit happen before the response is sent, so a failed commit
#: becomes an error response instead of a 200 for data that was never stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, for which organisation, allowed to do what.

    ``district_ids`` is None when the caller may see every district of the organisation (API keys,
    admins); planner users get the districts assigned to them, nurse users their ``staff_id``.
    """

    org_id: int
    role: Role
    scopes: frozenset[str]
    #: Stable, non-personal label for audit logs, e.g. ``api_key:hc_AbC123``.
    actor: str
    api_key_id: int | None = None
    user_id: int | None = None
    staff_id: int | None = None
    district_ids: frozenset[int] | None = None

    def allows(self, scope: str) -> bool:
        """Whether this principal holds ``scope``.

        Scopes are enforced for every role: an admin-role API key created with ``["read"]`` only
        reads. People (sign-in tokens) get the default scopes of their role.
        """
        return scope in self.scopes


_bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <API key or sign-in token from POST /v1/auth/token>`",
)
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The API key (alternative to Bearer)."
)

#: A marker, not a scope: endpoints that require it are open to nurses (for their own route, which
#: the handler checks with :func:`app.api.authz.ensure_staff_route`). Every other endpoint refuses
#: nurse credentials here, before the handler runs.
OWN_ROUTE = "own_route"
#: Record an API key's ``last_used_at`` at most this often (a write per request would be costly).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class PrincipalCache:
    """Verified credentials and their principal, for ``ttl_s`` seconds (0 disables it).

    Keyed by the SHA-256 of the credential (no plaintext key or token is kept), bounded to
    ``max_entries`` (least recently used dropped first) and thread-safe: the gate runs in the
    thread pool. Revocation and disabling take effect within ``ttl_s`` in every process.
    """

    def __init__(
        self,
        *,
        ttl_s: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        _CACHES.add(self)

    @staticmethod
    def _key(credential: str) -> bytes:
        return hashlib.sha256(credential.encode("utf-8")).digest()

    def get(self, credential: str) -> Principal | None:
        """The principal of ``credential`` if verified less than ``ttl_s`` ago."""
        if self.ttl_s <= 0:
            return None
        key = self._key(credential)
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            if self.clock() >= hit[1]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return hit[0]

    def put(self, credential: str, principal: Principal, *, valid_s: float | None = None) -> None:
        """Remember ``principal`` for ``ttl_s`` seconds, or ``valid_s`` if shorter (token exp)."""
        ttl = self.ttl_s if valid_s is None else min(self.ttl_s, valid_s)
        if ttl <= 0 or self.max_entries <= 0:
            return
        key = self._key(credential)
        with self._lock:
            self._entries[key] = (principal, self.clock() + ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every credential (e.g. after revoking one in this process)."""
        with self._lock:
            self._entries.clear()


#: Every principal cache of this process, emptied when credentials change (see below).
_CACHES: weakref.WeakSet[PrincipalCache] = weakref.WeakSet()
#: Rows a cached :class:`Principal` is made from: a commit in this process that changed one of
#: them through the ORM (revoking a key, disabling a user, changing a role or districts) empties
#: every principal cache of the process at once; other processes see it within the TTL.
_CREDENTIAL_ROWS = (ApiKey, User, UserDistrict)
_CREDENTIALS_CHANGED = "homecare_credentials_changed"


@event.listens_for(Session, "after_flush")
def _note_credential_changes(session: Session, _context: object) -> None:
    """Mark the session when it wrote a row a cached principal depends on."""
    if _CREDENTIALS_CHANGED in session.info:
        return
    for obj in (*session.dirty, *session.deleted, *session.new):
        if isinstance(obj, _CREDENTIAL_ROWS):
            session.info[_CREDENTIALS_CHANGED] = True
            return


@event.listens_for(Session, "after_commit")
def _forget_changed_credentials(session: Session) -> None:
    """After a commit that changed credentials, empty every principal cache of the process."""
    if session.info.pop(_CREDENTIALS_CHANGED, False):
        for cache in list(_CACHES):
            cache.clear()


@event.listens_for(Session, "after_rollback")
def _drop_credential_mark(session: Session) -> None:
    session.info.pop(_CREDENTIALS_CHANGED, None)


def _api_key_principal(session: Session, plaintext: str) -> Principal:
    key = tenants.find_active_key(session, plaintext)
    if key is None:
        msg = "unknown or revoked API key"
        raise Unauthenticated(msg)
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        # A statement, not an ORM change: bookkeeping must not empty the principal caches.
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
    return Principal(
        org_id=key.org_id,
        role=key.role,
        scopes=frozenset(key.scopes),
        actor=f"api_key:{key.prefix}",
        api_key_id=key.id,
    )


def _token_principal(
    session: Session, settings: Settings, token: str
) -> tuple[Principal, security.TokenClaims]:
    claims = security.decode_token(settings, token)
    user = users.active_user(session, claims.user_id, claims.org_id)
    if user is None or user.role is not claims.role:
        # Disabled, deleted, moved or re-roled since sign-in: the token no longer speaks for them.
        msg = "the token's user is disabled or changed; sign in again"
        raise Unauthenticated(msg)
    principal = Principal(
        org_id=user.org_id,
        role=user.role,
        scopes=frozenset(tenants.DEFAULT_SCOPES_BY_ROLE[user.role]),
        actor=f"user:{user.id}",
        user_id=user.id,
        staff_id=user.staff_id if user.role is Role.NURSE else None,
        district_ids=users.district_ids(session, user.id) if user.role is Role.PLANNER else None,
    )
    return principal, claims


def authenticate(
    session: Session,
    settings: Settings,
    bearer: str | None,
    api_key: str | None,
    cache: PrincipalCache | None = None,
) -> Principal:
    """The principal of an API key (``X-API-Key`` or Bearer) or a sign-in token (Bearer).

    With ``cache``, a credential verified less than ``cache.ttl_s`` ago is not verified again.
    """
    credential = bearer or api_key
    if not credential:
        msg = "missing credentials: send 'Authorization: Bearer <key or token>' or 'X-API-Key'"
        raise Unauthenticated(msg)
    if cache is not None:
        known = cache.get(credential)
        if known is not None:
            return known
    if bearer and security.looks_like_jwt(bearer):
        principal, claims = _token_principal(session, settings, bearer)
        if cache is not None:
            cache.put(credential, principal, valid_s=claims.expires_at - time.time())
        return principal
    principal = _api_key_principal(session, credential)
    if cache is not None:
        cache.put(credential, principal)
    return principal


def _authenticate_in_own_session(
    request: Request, bearer: str | None, api_key: str | None
) -> Principal:
    """:func:`authenticate` in a short transaction of its own (it may record ``last_used_at``)."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    with factory.begin() as session:
        return authenticate(
            session,
            request.app.state.settings,
            bearer,
            api_key,
            getattr(request.app.state, "principal_cache", None),
        )


async def current_principal(
    security_scopes: SecurityScopes,
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """Authenticate, rate-limit and check scopes and role; the one gate of every handler.

    401 without a valid credential; 429 over the caller's rate limit; 403 when a scope is missing
    or a nurse calls anything but an :data:`OWN_ROUTE` endpoint.

    Runs on the event loop: a credential in the :class:`PrincipalCache` costs no thread-pool
    hop and no database session; otherwise it is verified in the thread pool, in a transaction
    of its own. The Redis rate limiter (network I/O) also runs in the thread pool.
    """
    settings: Settings = request.app.state.settings
    token = bearer.credentials if bearer is not None else None
    cache: PrincipalCache | None = getattr(request.app.state, "principal_cache", None)
    credential = token or api_key
    principal = cache.get(credential) if cache is not None and credential else None
    if principal is None:
        principal = await run_in_threadpool(_authenticate_in_own_session, request, token, api_key)
    # Seen by the access log (org and a non-personal actor label only).
    request.state.principal = principal
    limiter: ratelimit.RateLimiter = request.app.state.rate_limiter
    if settings.rate_limit_per_s > 0:
        enforce = functools.partial(
            ratelimit.enforce,
            limiter,
            principal.actor,
            rate=settings.rate_limit_per_s,
            burst=settings.rate_limit_burst,
        )
        if isinstance(limiter, ratelimit.MemoryRateLimiter):
            enforce()
        else:
            await run_in_threadpool(enforce)
    required = [s for s in security_scopes.scopes if s != OWN_ROUTE]
    missing = [s for s in required if not principal.allows(s)]
    if missing:
        msg = f"this credential lacks the scope(s): {', '.join(missing)}"
        raise Forbidden(msg)
    if principal.role is Role.NURSE and OWN_ROUTE not in security_scopes.scopes:
        msg = "a nurse credential may only read its own route"
        raise Forbidden(msg)
    return principal


#: Any role, nurses included (e.g. "who am I"); handlers must still apply the role rules.
AnyRole = Annotated[Principal, Security(current_principal, scopes=[OWN_ROUTE])]
#: Nurses' own route (and planners'/admins' reads of routes): handler calls ensure_staff_route.
RouteReader = Annotated[Principal, Security(current_principal, scopes=["read", OWN_ROUTE])]
CurrentPrincipal = Annotated[Principal, Security(current_principal)]
Reader = Annotated[Principal, Security(current_principal, scopes=["read"])]
Writer = Annotated[Principal, Security(current_principal, scopes=["write"])]
Planner = Annotated[Principal, Security(current_principal, scopes=["plan"])]
Admin = Annotated[Principal, Security(current_principal, scopes=["admin"])]


def event_reporter(
    principal: Annotated[Principal, Security(current_principal, scopes=[OWN_ROUTE])],
) -> Principal:
    """Planners (the ``plan`` scope) and nurses; the handler applies the role rules for nurses.

    A nurse reports actual times or delays of their own visits only
    (:func:`app.api.authz.ensure_event_kinds`, :func:`app.api.authz.ensure_plan_events`).
    """
    if principal.role is not Role.NURSE and not principal.allows("plan"):
        msg = "this credential lacks the scope(s): plan"
        raise Forbidden(msg)
    return principal


#: Events on a plan: the ``plan`` scope, or a nurse reporting on their own visits.
EventReporter = Annotated[Principal, Depends(event_reporter)]

"""Sign-in tokens for people: short-lived JWTs (HS256) signed with ``SECRET_KEY``.

The key is derived from ``SECRET_KEY`` (:func:`signing_key`). Claims: ``sub`` (user id),
``org`` (organisation id), ``role``, ``iat``, ``exp`` and a random ``jti``. A token proves only
who signed in and when; on every request the user row is read again, so disabling a user (or
changing their role or organisation) ends their tokens at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import jwt

from app.errors import Unauthenticated
from app.settings import Settings
from app.store.models import Role, User

ALGORITHM = "HS256"
_REQUIRED = ["sub", "org", "role", "exp", "iat", "jti"]


def signing_key(settings: Settings) -> bytes:
    """The HS256 key: HMAC-SHA256 of a fixed label under ``SECRET_KEY``.

    Deriving it keeps tokens apart from any other use of the secret and always gives a 32-byte
    key (the short development secret included).
    """
    secret = settings.secret_key.get_secret_value().encode("utf-8")
    return hmac.new(secret, b"homecare-planner/jwt/v1", hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The verified claims of a sign-in token."""

    user_id: int
    org_id: int
    role: Role
    jti: str
    expires_at: int


def looks_like_jwt(credential: str) -> bool:
    """JWTs are three base64url parts separated by dots; API keys have no dots."""
    return credential.count(".") == 2


def issue_token(settings: Settings, user: User, *, now: float | None = None) -> tuple[str, int]:
    """A signed token for ``user`` and its lifetime in seconds."""
    issued = int(time.time() if now is None else now)
    ttl = settings.token_ttl_s
    claims = {
        "sub": str(user.id),
        "org": user.org_id,
        "role": user.role.value,
        "iat": issued,
        "exp": issued + ttl,
        "jti": secrets.token_urlsafe(12),
    }
    token = jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM)
    return token, ttl


def decode_token(settings: Settings, token: str) -> TokenClaims:
    """Verify signature, algorithm and expiry; :class:`Unauthenticated` for anything wrong."""
    try:
        claims = jwt.decode(
            token,
            signing_key(settings),
            algorithms=[ALGORITHM],
            options={"require": _REQUIRED},
        )
        return TokenClaims(
            user_id=int(claims["sub"]),
            org_id=int(claims["org"]),
            role=Role(claims["role"]),
            jti=str(claims["jti"]),
            expires_at=int(claims["exp"]),
        )
    except jwt.ExpiredSignatureError as exc:
        msg = "the token has expired; sign in again"
        raise Unauthenticated(msg) from exc
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        msg = "invalid token"
        raise Unauthenticated(msg) from exc

"""Pure helpers for plan-changed webhooks: HMAC signatures and the retry schedule.

Signature header (``Homecare-Signature``)::

    t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

The timestamp is part of the signed message so a captured request cannot be replayed later than
the receiver's tolerance; several ``v1=`` entries may be present while a secret is being rotated,
and the header verifies if any of them matches. The delivery worker (HTTP, storage) lives outside
the pure core and uses these functions.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from app.replan.errors import InvalidArgumentError

#: Name of the HTTP header carrying the signature.
SIGNATURE_HEADER = "Homecare-Signature"
#: Default tolerance between the signed timestamp and the receiver's clock.
DEFAULT_TOLERANCE_S = 300


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Signature header value for a webhook body.

    Parameters
    ----------
    secret
        The subscriber's shared secret (non-empty).
    timestamp
        Unix seconds at sending time.
    body
        The exact bytes sent as the request body.

    Returns
    -------
    str
        ``t=<timestamp>,v1=<hex digest>``.
    """
    if not secret:
        msg = "secret must not be empty"
        raise InvalidArgumentError(msg)
    if timestamp < 0:
        msg = f"timestamp must be >= 0 unix seconds, got {timestamp}"
        raise InvalidArgumentError(msg)
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(
    secret: bytes,
    header: str,
    body: bytes,
    *,
    now: int,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> bool:
    """Whether ``header`` is a valid, fresh signature of ``body`` under ``secret``.

    Parameters
    ----------
    secret
        The shared secret.
    header
        The received signature header value.
    body
        The received body bytes, unmodified.
    now
        The receiver's clock in unix seconds.
    tolerance_s
        Largest accepted distance between the signed timestamp and ``now``.

    Returns
    -------
    bool
        False for a malformed header, a stale or future timestamp, or no matching signature;
        digests are compared in constant time.
    """
    if not secret:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if timestamp is not None or not value.isdigit():
                return False
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body).encode("ascii")
    matches = [hmac.compare_digest(expected, c.encode("ascii", "replace")) for c in candidates]
    return any(matches)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, for a bounded number of delivery attempts.

    The ``n``-th retry waits ``min(cap_s, base_s * factor**(n-1))`` scaled by a random factor in
    ``[1 - jitter, 1]``, never less than the previous wait (so the schedule is monotone) and never
    more than ``cap_s``.
    """

    base_s: float = 30.0
    factor: float = 2.0
    cap_s: float = 3600.0
    max_attempts: int = 8
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.base_s <= 0:
            msg = f"base_s must be > 0, got {self.base_s}"
            raise InvalidArgumentError(msg)
        if self.factor < 1:
            msg = f"factor must be >= 1, got {self.factor}"
            raise InvalidArgumentError(msg)
        if self.cap_s < self.base_s:
            msg = f"cap_s ({self.cap_s}) must be >= base_s ({self.base_s})"
            raise InvalidArgumentError(msg)
        if self.max_attempts < 1:
            msg = f"max_attempts must be >= 1, got {self.max_attempts}"
            raise InvalidArgumentError(msg)
        if not 0 <= self.jitter < 1:
            msg = f"jitter must lie in [0, 1), got {self.jitter}"
            raise InvalidArgumentError(msg)


def retry_schedule(policy: RetryPolicy, *, random: Callable[[], float]) -> tuple[float, ...]:
    """Waits before each retry: ``max_attempts - 1`` delays in seconds.

    Parameters
    ----------
    policy
        Backoff parameters.
    random
        Returns floats in ``[0, 1)`` (inject ``random.Random(seed).random`` for reproducibility).

    Returns
    -------
    tuple of float
        Delay before attempt 2, 3, ..., ``max_attempts``; monotone non-decreasing, each
        ``<= policy.cap_s``. Empty when only one attempt is allowed.
    """
    delays: list[float] = []
    previous = 0.0
    for attempt in range(1, policy.max_attempts):
        delay = next_retry_delay(policy, attempt, random=random, previous_s=previous)
        if delay is None:  # pragma: no cover - range() stops first
            break
        delays.append(delay)
        previous = delay
    return tuple(delays)


def next_retry_delay(
    policy: RetryPolicy, attempt: int, *, random: Callable[[], float], previous_s: float = 0.0
) -> float | None:
    """Delay before the attempt after ``attempt`` (1-based), or None when attempts are used up.

    Parameters
    ----------
    policy
        Backoff parameters.
    attempt
        How many attempts have been made so far (>= 1).
    random
        Returns floats in ``[0, 1)``.
    previous_s
        The previous delay, so consecutive waits never shrink.

    Returns
    -------
    float or None
        Seconds to wait, or None to give up and mark the delivery failed.
    """
    if attempt < 1:
        msg = f"attempt must be >= 1, got {attempt}"
        raise InvalidArgumentError(msg)
    if attempt >= policy.max_attempts:
        return None
    r = random()
    if not 0.0 <= r <= 1.0:
        msg = f"random() must return a float in [0, 1], got {r!r}"
        raise InvalidArgumentError(msg)
    raw = min(policy.cap_s, policy.base_s * policy.factor ** (attempt - 1))
    return min(policy.cap_s, max(previous_s, raw * (1.0 - policy.jitter * r)))

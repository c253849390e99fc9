"""Webhook signatures verify, reject tampering and stale timestamps; retries back off, capped."""

from __future__ import annotations

import itertools
import random

import pytest

from app.replan.errors import InvalidArgumentError
from app.replan.webhooks import RetryPolicy, next_retry_delay, retry_schedule, sign, verify

SECRET = b"s3cret-for-tests"
BODY = b'{"plan_id": "p1", "version": 4}'
T0 = 1_700_000_000


class TestSignature:
    def test_header_format(self) -> None:
        header = sign(SECRET, T0, BODY)
        t, v1 = header.split(",")
        assert t == f"t={T0}"
        assert v1.startswith("v1=")
        assert len(v1) == 3 + 64

    def test_signature_verifies(self) -> None:
        assert verify(SECRET, sign(SECRET, T0, BODY), BODY, now=T0 + 10)

    def test_tampered_body_is_rejected(self) -> None:
        assert not verify(SECRET, sign(SECRET, T0, BODY), BODY + b" ", now=T0)

    def test_wrong_secret_is_rejected(self) -> None:
        assert not verify(b"other", sign(SECRET, T0, BODY), BODY, now=T0)

    def test_old_timestamp_is_rejected(self) -> None:
        header = sign(SECRET, T0, BODY)
        assert verify(SECRET, header, BODY, now=T0 + 300)
        assert not verify(SECRET, header, BODY, now=T0 + 301)

    def test_replayed_signature_with_new_timestamp_is_rejected(self) -> None:
        digest = sign(SECRET, T0, BODY).split(",")[1]
        assert not verify(SECRET, f"t={T0 + 60},{digest}", BODY, now=T0 + 60)

    def test_rotation_accepts_any_matching_v1(self) -> None:
        good = sign(SECRET, T0, BODY).split(",")[1]
        old = sign(b"old-secret", T0, BODY).split(",")[1]
        assert verify(SECRET, f"t={T0},{old},{good}", BODY, now=T0)

    @pytest.mark.parametrize("header", ["", "garbage", "t=abc,v1=00", f"t={T0}", "v1=00"])
    def test_malformed_header_is_rejected(self, header: str) -> None:
        assert not verify(SECRET, header, BODY, now=T0)

    def test_empty_secret_cannot_sign(self) -> None:
        with pytest.raises(InvalidArgumentError):
            sign(b"", T0, BODY)


class TestRetrySchedule:
    @pytest.mark.parametrize("seed", range(5))
    def test_monotone_and_capped(self, seed: int) -> None:
        policy = RetryPolicy(base_s=10, factor=2, cap_s=300, max_attempts=10, jitter=0.5)
        delays = retry_schedule(policy, random=random.Random(seed).random)
        assert len(delays) == 9
        assert all(a <= b for a, b in itertools.pairwise(delays))
        assert max(delays) <= 300
        assert delays[0] >= 5
        assert delays[-1] >= 150

    def test_without_jitter_it_doubles_until_the_cap(self) -> None:
        policy = RetryPolicy(base_s=30, factor=2, cap_s=200, max_attempts=6, jitter=0)
        assert retry_schedule(policy, random=lambda: 0.5) == (30, 60, 120, 200, 200)

    def test_jitter_comes_from_the_injected_random(self) -> None:
        policy = RetryPolicy(jitter=0.5)
        assert retry_schedule(policy, random=random.Random(1).random) == retry_schedule(
            policy, random=random.Random(1).random
        )
        assert retry_schedule(policy, random=lambda: 0.0) != retry_schedule(
            policy, random=lambda: 0.99
        )

    def test_gives_up_after_max_attempts(self) -> None:
        policy = RetryPolicy(max_attempts=3, jitter=0)
        assert next_retry_delay(policy, 2, random=lambda: 0.0) == 60
        assert next_retry_delay(policy, 3, random=lambda: 0.0) is None

    def test_invalid_policy_is_refused(self) -> None:
        with pytest.raises(InvalidArgumentError):
            RetryPolicy(base_s=10, cap_s=5)

"""Pacing for provider calls: token-bucket rate limits and jittered exponential backoff."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from scheduler.domain import ProviderError


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """At most ``rate_per_s`` calls per second on average, ``burst`` at once."""

    rate_per_s: float
    burst: int = 1

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs rate_per_s > 0 and burst >= 1")


# Published or prudent limits. WattTime allows 3,000 requests per rolling 5 minutes per user;
# the others publish none, so stay polite.
DEFAULT_RATE_LIMITS: Mapping[str, RateLimit] = {
    "watttime": RateLimit(rate_per_s=10.0, burst=10),
    "electricitymaps": RateLimit(rate_per_s=10.0, burst=10),
    "ukgrid": RateLimit(rate_per_s=5.0, burst=5),
    "carbonaware_sdk": RateLimit(rate_per_s=20.0, burst=20),
}


class TokenBucket:
    """A thread-safe token bucket. ``monotonic`` and ``sleep`` are injectable for tests."""

    def __init__(
        self,
        limit: RateLimit,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(limit.burst)
        self._updated = monotonic()

    def try_acquire(self) -> float:
        """Take a token if one is there and return 0; else return the seconds until one is."""
        with self._lock:
            now = self._monotonic()
            self._tokens = min(
                float(self.limit.burst),
                self._tokens + (now - self._updated) * self.limit.rate_per_s,
            )
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.limit.rate_per_s

    def acquire(self, max_wait_s: float) -> float:
        """Take a token, waiting up to ``max_wait_s``. Returns 0 on success, else the seconds
        still to wait for one (the caller should come back then)."""
        waited_s = 0.0
        while True:
            wait_s = self.try_acquire()
            if wait_s == 0.0:
                return 0.0
            if waited_s + wait_s > max_wait_s:
                return wait_s
            self._sleep(wait_s)
            waited_s += wait_s


@dataclass(frozen=True, slots=True, kw_only=True)
class BackoffPolicy:
    """Delay before retrying a zone after ``failures`` consecutive failed refreshes.

    ``base_s * 2**(failures-1)`` capped at ``max_s``, scaled by a random factor in
    ``[1 - jitter, 1]`` so zones that failed together do not retry together; never shorter than
    the provider's Retry-After, and at least ``non_retryable_s`` after a fault that retrying
    soon cannot fix (refused credentials, unknown zone).
    """

    base_s: float = 30.0
    max_s: float = 3600.0
    jitter: float = 0.5
    non_retryable_s: float = 3600.0

    def delay_s(self, failures: int, error: ProviderError, rng: random.Random) -> float:
        exponent = min(max(failures, 1) - 1, 30)
        delay_s = min(self.max_s, self.base_s * 2.0**exponent)
        delay_s *= rng.uniform(1.0 - self.jitter, 1.0)
        if not error.retryable:
            delay_s = max(delay_s, self.non_retryable_s)
        if error.retry_after_s is not None:
            delay_s = max(delay_s, error.retry_after_s)
        return delay_s

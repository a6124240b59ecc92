"""Domain errors. One root; a subclass only where a caller reacts differently.

HTTP status codes live in ``scheduler.api.errors``, never here.
"""

from __future__ import annotations

from collections.abc import Sequence


class GreenlightError(Exception):
    """Root of every error Greenlight raises on purpose."""


class JobNotFound(GreenlightError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} not found")
        self.job_id = job_id


class InvalidJobSpec(GreenlightError):
    """A submitted spec breaks a rule; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidJobSpecs(InvalidJobSpec):
    """Specs of one batch that break a rule: ``errors`` holds ``(index, field, message)`` per
    broken spec, by position in the batch. The batch is refused whole."""

    def __init__(self, errors: Sequence[tuple[int, str, str]]) -> None:
        first = errors[0] if errors else (0, "jobs", "invalid")
        super().__init__(f"jobs.{first[0]}.{first[1]}", f"{len(errors)} spec(s) refused")
        self.errors = tuple(errors)


class InvalidTransition(GreenlightError):
    """A state change that the job's current state does not allow (e.g. cancel a finished job)."""

    def __init__(self, job_id: str, current: str, target: str) -> None:
        super().__init__(f"job {job_id!r} is {current}; it cannot become {target}")
        self.job_id = job_id
        self.current = current
        self.target = target


class Unauthorized(GreenlightError):
    """No credentials, or credentials that match no live token."""


class Forbidden(GreenlightError):
    """Valid credentials that may not do this (another tenant's job, admin-only route)."""


class ForecastUnavailable(GreenlightError):
    """No usable forecast (nor fallback data) for a zone."""

    def __init__(self, zone: str, reason: str = "no forecast") -> None:
        super().__init__(f"no usable forecast for zone {zone!r}: {reason}")
        self.zone = zone
        self.reason = reason


class ProviderError(GreenlightError):
    """A carbon-intensity provider failed: unreachable, refused, rate-limited or sent garbage.

    ``retry_after_s`` carries a provider's Retry-After hint when it gave one.
    """

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        retry_after_s: float | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message
        self.retry_after_s = retry_after_s
        self.retryable = retryable


class DispatchError(GreenlightError):
    """The cluster refused or could not be reached to run, query or stop a job."""


class ClusterUnreachable(DispatchError):
    """The cluster could not be reached at all (connection refused, timed out, reset): nothing
    was decided about the job, so the caller retries later without counting it against the
    job. Any other DispatchError means the cluster answered and refused."""


class UnplannableJob(GreenlightError):
    """One job's numbers cannot be planned (non-finite, out of range): the caller sets that job
    aside and plans the others."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"job {job_id!r} cannot be planned: {reason}")
        self.job_id = job_id
        self.reason = reason


class MeterUnavailable(GreenlightError):
    """An energy meter cannot read on this machine (no GPU, no RAPL, permission denied)."""


class ConfigError(GreenlightError):
    """The configuration is inconsistent or incomplete."""


class RegionNotFound(GreenlightError):
    def __init__(self, region: str) -> None:
        super().__init__(f"region {region!r} not found")
        self.region = region

"""Relocation of running deployments: stay, or move blue/green to a greener region.

Every plan cycle prices the horizon ahead (``horizon_s``, default 8 h) for each running
deployment: in its current region and in every other allowed region, from the latest forecast
per region, the deployment's power (measured, or expected) and the regions' PUEs. With ``P`` the
power (W), ``H`` the horizon and ``O`` the blue/green overlap (the old copy keeps serving while
the new one starts and passes its health check)::

    stay_g   = P x PUE_cur x mean I_cur[now, now + H) x H
    move_g   = P x PUE_alt x mean I_alt[now, now + H) x H
             + P x PUE_cur x mean I_cur[now, now + O) x O       (the old copy during the overlap)
    saving_g = stay_g - move_g          saving_pct = 100 x saving_g / stay_g

The rule: the alternative with the largest saving is taken only when all of these hold

* the deployment has been in its region for at least ``min_stay_s``;
* ``saving_g >= threshold_g x (1 + hysteresis)``;
* ``saving_pct >= threshold_pct x (1 + hysteresis)``, and the saving is positive.

``threshold_*`` is what a move must be worth; ``hysteresis`` is the margin on top that absorbs
forecast revisions. A move back needs the same margin in the other direction, so between two
regions the dead band is twice the bar wide (plus the overlap, paid both ways): a forecast that
wobbles around the threshold never moves a deployment, and one that wobbles by less than the
dead band moves it at most once. The minimum stay bounds the rate of moves whatever the
forecast does. Capacity is checked by ``plan_relocations`` (whole GPUs, or packed with
``scheduler.planning.packing``). Afterwards ``measured_saving`` judges a move on actuals, for
the savings report. Pure: ``now`` is a parameter.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.domain import Forecast, ForecastUnavailable
from scheduler.planning.accounting import (
    covered_s,
    interval_intensity_g_per_kwh,
    profile_emissions_g,
)
from scheduler.planning.packing import gpus_needed

W_PER_KW = 1000.0
S_PER_H = 3600.0
# A day's mean hides the daily swing a deployment can follow (solar noon moves west across the
# regions); a third of a day keeps it and is still long enough that a dip of an hour or two
# does not pay for a move. Measured in ``bench/deployments.py`` over nine weeks of 2023 (DE, ES,
# US-CAL-CISO), saving over staying put: 8 h with a 3 h stay 1.7 % (whole GPUs) and 2.0 %
# (packed); 24 h with a 6 h stay 1.1 % and 0.3 %.
DEFAULT_HORIZON_S = 8 * S_PER_H


@dataclass(frozen=True, slots=True, kw_only=True)
class RelocationPolicy:
    """When a deployment moves (see the module docstring). Raises ValueError on bad values.

    Defaults: 8 h horizon; a move must save 5 % and 50 g over it, plus 25 % hysteresis (so
    6.25 % and 62.5 g); 3 h minimum stay; 10 min blue/green overlap; a region's forecast must
    cover 75 % of the horizon to be priced.
    """

    horizon_s: float = DEFAULT_HORIZON_S
    threshold_g: float = 50.0
    threshold_pct: float = 5.0
    hysteresis: float = 0.25
    min_stay_s: float = 3 * S_PER_H
    overlap_s: float = 600.0
    min_coverage: float = 0.75

    def __post_init__(self) -> None:
        if not self.horizon_s > 0:
            raise ValueError(f"horizon_s must be positive, got {self.horizon_s}")
        for name in ("threshold_g", "threshold_pct", "hysteresis", "min_stay_s", "overlap_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and non-negative, got {value}")
        if not 0 < self.min_coverage <= 1:
            raise ValueError(f"min_coverage must be in (0, 1], got {self.min_coverage}")

    @property
    def bar_g(self) -> float:
        """The saving (g over the horizon) a move must reach."""
        return self.threshold_g * (1 + self.hysteresis)

    @property
    def bar_pct(self) -> float:
        """The saving (% of staying put over the horizon) a move must reach."""
        return self.threshold_pct * (1 + self.hysteresis)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionOutlook:
    """One region's forecast over the horizon: mean intensity (over the covered part), mean over
    the first ``overlap_s`` (what the old copy emits during a move out), the share covered."""

    region: str
    pue: float
    mean_g_per_kwh: float
    overlap_g_per_kwh: float
    coverage: float
    horizon_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningDeployment:
    """A deployment as the decision sees it: where it runs and since when (start there, or the
    end of its last move), its power draw (W, measured mean or expected; IT power, the PUE is
    the region's), the regions it may run in (empty: any) and its GPU share (for capacity)."""

    job_id: str
    region: str
    since: datetime
    power_w: float
    allowed_regions: tuple[str, ...] = ()
    gpu_share: float = 1.0


class RelocationReason(enum.StrEnum):
    MOVE = "move"
    MIN_STAY = "min-stay"
    BELOW_THRESHOLD = "below-threshold"
    NO_ALTERNATIVE = "no-alternative"
    UNPRICED = "unpriced"
    NO_ROOM = "no-room"


@dataclass(frozen=True, slots=True, kw_only=True)
class RelocationOption:
    """Moving to ``region``: expected grams over the horizon staying and moving (overlap
    included), and the saving."""

    region: str
    stay_g: float
    move_g: float

    @property
    def saving_g(self) -> float:
        return self.stay_g - self.move_g

    @property
    def saving_pct(self) -> float:
        return 100.0 * self.saving_g / self.stay_g if self.stay_g > 0 else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RelocationDecision:
    """Stay (``target_region`` None) or move. ``best`` is the best priced alternative even when
    staying (None when there is none), so events can say what a move would have saved."""

    job_id: str
    current_region: str
    target_region: str | None
    best: RelocationOption | None
    reason: RelocationReason
    message: str

    @property
    def moves(self) -> bool:
        return self.target_region is not None

    @property
    def saving_g(self) -> float:
        """Expected saving over the horizon of the move (0 when staying)."""
        return self.best.saving_g if self.moves and self.best is not None else 0.0

    @property
    def saving_pct(self) -> float:
        return self.best.saving_pct if self.moves and self.best is not None else 0.0


def region_outlooks(
    forecasts: Mapping[str, Forecast],
    pues: Mapping[str, float],
    now: datetime,
    policy: RelocationPolicy,
) -> dict[str, RegionOutlook]:
    """The outlook of every region in ``pues`` whose forecast covers at least
    ``policy.min_coverage`` of ``[now, now + horizon)``; the others are left out (unpriced).
    Computed once per cycle and shared by every deployment."""
    end = now + timedelta(seconds=policy.horizon_s)
    overlap_end = now + timedelta(seconds=policy.overlap_s)
    out = {}
    for region, pue in pues.items():
        series = forecasts.get(region)
        if series is None:
            continue
        coverage = covered_s(series, now, end) / policy.horizon_s
        if coverage < policy.min_coverage:
            continue
        mean = interval_intensity_g_per_kwh(series, now, end)
        try:
            overlap = interval_intensity_g_per_kwh(series, now, overlap_end)
        except ForecastUnavailable:
            overlap = mean  # the forecast starts a little after now: price the overlap flat
        out[region] = RegionOutlook(
            region=region,
            pue=pue,
            mean_g_per_kwh=mean,
            overlap_g_per_kwh=overlap,
            coverage=coverage,
            horizon_s=policy.horizon_s,
        )
    return out


def option(
    power_w: float, current: RegionOutlook, target: RegionOutlook, policy: RelocationPolicy
) -> RelocationOption:
    """Expected grams over the horizon staying in ``current`` and moving to ``target``."""
    kw = power_w / W_PER_KW
    horizon_h = policy.horizon_s / S_PER_H
    stay_g = kw * current.pue * current.mean_g_per_kwh * horizon_h
    overlap_g = kw * current.pue * current.overlap_g_per_kwh * policy.overlap_s / S_PER_H
    move_g = kw * target.pue * target.mean_g_per_kwh * horizon_h + overlap_g
    return RelocationOption(region=target.region, stay_g=stay_g, move_g=move_g)


def options(
    deployment: RunningDeployment,
    outlooks: Mapping[str, RegionOutlook],
    policy: RelocationPolicy,
) -> list[RelocationOption]:
    """Every priced allowed alternative, largest saving first (ties by region name); empty when
    the current region is unpriced. Raises ValueError for a negative or non-finite power, or
    outlooks priced over another horizon than ``policy``'s."""
    if not (math.isfinite(deployment.power_w) and deployment.power_w >= 0):
        raise ValueError(f"{deployment.job_id}: power_w must be finite and >= 0")
    if any(o.horizon_s != policy.horizon_s for o in outlooks.values()):
        raise ValueError("outlooks were priced over another horizon than the policy's")
    current = outlooks.get(deployment.region)
    if current is None:
        return []
    allowed = deployment.allowed_regions or tuple(outlooks)
    found = [
        option(deployment.power_w, current, outlooks[r], policy)
        for r in allowed
        if r != deployment.region and r in outlooks
    ]
    return sorted(found, key=lambda o: (-o.saving_g, o.region))


def clears_bar(candidate: RelocationOption, policy: RelocationPolicy) -> bool:
    """Whether a saving is positive and reaches both bars (grams and percent, hysteresis
    included): with both thresholds at 0 a move must still save something."""
    return (
        candidate.saving_g > 0
        and candidate.saving_g >= policy.bar_g
        and candidate.saving_pct >= policy.bar_pct
    )


def decide(
    deployment: RunningDeployment,
    outlooks: Mapping[str, RegionOutlook],
    now: datetime,
    policy: RelocationPolicy,
) -> RelocationDecision:
    """Stay or move (see the module docstring); capacity is not checked here."""
    found = options(deployment, outlooks, policy)
    best = found[0] if found else None
    if deployment.region not in outlooks:
        return _stay(deployment, None, RelocationReason.UNPRICED, "no usable forecast here")
    if best is None:
        return _stay(deployment, None, RelocationReason.NO_ALTERNATIVE, "no other priced region")
    stayed_s = (now - deployment.since).total_seconds()
    if stayed_s < policy.min_stay_s:
        left_h = (policy.min_stay_s - stayed_s) / S_PER_H
        return _stay(
            deployment, best, RelocationReason.MIN_STAY, f"minimum stay: {left_h:.1f} h left"
        )
    if not clears_bar(best, policy):
        return _stay(
            deployment,
            best,
            RelocationReason.BELOW_THRESHOLD,
            f"{best.region} would save {best.saving_g:.0f} g ({best.saving_pct:.1f} %), under "
            f"{policy.bar_g:.0f} g and {policy.bar_pct:.2f} %",
        )
    return _move(deployment, best, policy)


def _stay(
    deployment: RunningDeployment,
    best: RelocationOption | None,
    reason: RelocationReason,
    message: str,
) -> RelocationDecision:
    return RelocationDecision(
        job_id=deployment.job_id,
        current_region=deployment.region,
        target_region=None,
        best=best,
        reason=reason,
        message=message,
    )


def _move(
    deployment: RunningDeployment, chosen: RelocationOption, policy: RelocationPolicy
) -> RelocationDecision:
    return RelocationDecision(
        job_id=deployment.job_id,
        current_region=deployment.region,
        target_region=chosen.region,
        best=chosen,
        reason=RelocationReason.MOVE,
        message=(
            f"moves to {chosen.region}: expected to save {chosen.saving_g:.0f} g "
            f"({chosen.saving_pct:.1f} %) over {policy.horizon_s / S_PER_H:g} h"
        ),
    )


def plan_relocations(
    deployments: Sequence[RunningDeployment],
    outlooks: Mapping[str, RegionOutlook],
    now: datetime,
    policy: RelocationPolicy,
    capacity_gpus: Mapping[str, int],
    *,
    packed: bool,
) -> dict[str, RelocationDecision]:
    """One cycle's decisions for every deployment, by job id, within capacity.

    Moves are granted largest saving first; each takes the best alternative that clears the bar
    and still has room once the deployments already there (and those granted before it) are
    counted: one whole GPU each (``ceil(gpu_share)``), or, ``packed``, the GPUs a first-fit
    decreasing packing of their shares needs. A granted move's source keeps its GPUs this cycle
    (the old copy runs until the new one is healthy). A deployment with no room anywhere stays
    (reason ``no-room``). Regions missing from ``capacity_gpus`` have no room.
    """
    decisions = {d.job_id: decide(d, outlooks, now, policy) for d in deployments}
    shares: dict[str, list[float]] = {r: [] for r in capacity_gpus}
    for d in deployments:
        shares.setdefault(d.region, []).append(d.gpu_share)
    by_id = {d.job_id: d for d in deployments}
    movers = sorted(
        (x for x in decisions.values() if x.moves), key=lambda x: (-x.saving_g, x.job_id)
    )
    for first in movers:
        deployment = by_id[first.job_id]
        granted = None
        for candidate in options(deployment, outlooks, policy):
            if not clears_bar(candidate, policy):
                break
            room = capacity_gpus.get(candidate.region, 0)
            there = shares.get(candidate.region, [])
            if _needed([*there, deployment.gpu_share], packed) <= room:
                granted = candidate
                break
        if granted is None:
            decisions[first.job_id] = _stay(
                deployment, first.best, RelocationReason.NO_ROOM, "no room where a move pays"
            )
            continue
        shares.setdefault(granted.region, []).append(deployment.gpu_share)
        decisions[first.job_id] = _move(deployment, granted, policy)
    return decisions


def _needed(gpu_shares: Sequence[float], packed: bool) -> int:
    if packed:
        return gpus_needed(gpu_shares)
    return sum(max(1, math.ceil(s)) for s in gpu_shares)


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasuredRelocation:
    """A move judged on actuals: grams emitted since it (the new copy, plus the old copy's
    overlap) and grams the same energy would have emitted where the deployment was."""

    stayed_g: float
    actual_g: float

    @property
    def saving_g(self) -> float:
        return self.stayed_g - self.actual_g

    @property
    def saving_pct(self) -> float:
        return 100.0 * self.saving_g / self.stayed_g if self.stayed_g > 0 else 0.0


EnergyProfile = Sequence[tuple[datetime, datetime, float]]


def measured_saving(
    profile: EnergyProfile,
    overlap: EnergyProfile,
    *,
    from_pue: float,
    from_actuals: Forecast,
    to_pue: float,
    to_actuals: Forecast,
) -> MeasuredRelocation:
    """The saving of a move on actual intensity. ``profile`` is the new copy's energy since the
    move, ``(start, end, energy_j)`` intervals (its energy reports); staying put is the same
    profile in the old region (the old copy would have served the same requests). ``overlap`` is
    the old copy's energy from the move's start until it stopped, charged to the move. Raises
    ForecastUnavailable when an actual series covers none of an interval with energy in it."""
    stayed_g = profile_emissions_g(profile, from_pue, from_actuals)
    actual_g = profile_emissions_g(profile, to_pue, to_actuals) + profile_emissions_g(
        overlap, from_pue, from_actuals
    )
    return MeasuredRelocation(stayed_g=stayed_g, actual_g=actual_g)

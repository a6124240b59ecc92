"""The relocation decision: hand-computed cases, and its three invariants as properties (never
within the minimum stay, never under the threshold, never flapping on a wobbling forecast)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scheduler.domain import ForecastUnavailable, SeriesKind
from scheduler.planning.relocation import (
    RegionOutlook,
    RelocationPolicy,
    RelocationReason,
    RunningDeployment,
    decide,
    measured_saving,
    plan_relocations,
    region_outlooks,
)
from tests.fakes.planning import T0, series

HOURS = 24
# Hand-computed cases price a whole day and stay at least 6 h.
DAY = RelocationPolicy(horizon_s=HOURS * 3600.0, min_stay_s=6 * 3600.0)
NO_THRESHOLD = RelocationPolicy(
    horizon_s=HOURS * 3600.0, threshold_g=0.0, threshold_pct=0.0, min_stay_s=0.0
)


def outlooks(
    prices: Mapping[str, Sequence[float]],
    policy: RelocationPolicy,
    pues: Mapping[str, float] | None = None,
    hours: int = 0,
) -> dict[str, RegionOutlook]:
    """Outlooks at ``T0 + hours`` of hourly forecasts starting then."""
    now = T0 + timedelta(hours=hours)
    forecasts = {r: series(v, start=now) for r, v in prices.items()}
    return region_outlooks(forecasts, pues or dict.fromkeys(prices, 1.0), now, policy)


def deployment(
    region: str = "a",
    power_w: float = 500.0,
    stayed_h: float = 100.0,
    allowed_regions: tuple[str, ...] = (),
) -> RunningDeployment:
    return RunningDeployment(
        job_id="d1",
        region=region,
        since=T0 - timedelta(hours=stayed_h),
        power_w=power_w,
        allowed_regions=allowed_regions,
    )


def test_a_cleaner_region_wins_by_hand() -> None:
    policy = DAY
    got = decide(deployment(), outlooks({"a": [400] * 24, "b": [200] * 24}, policy), T0, policy)
    # stay: 0.5 kW x 400 g/kWh x 24 h = 4,800 g; move: 0.5 x 200 x 24 = 2,400 g, plus the old
    # copy's 10 min overlap 0.5 x 400 / 6 = 33.3 g.
    assert got.moves
    assert got.target_region == "b"
    assert got.reason is RelocationReason.MOVE
    assert got.best is not None
    assert got.best.stay_g == pytest.approx(4800.0)
    assert got.best.move_g == pytest.approx(2400.0 + 100.0 / 3)
    assert got.saving_g == pytest.approx(4800.0 - 2400.0 - 100.0 / 3)
    assert got.saving_pct == pytest.approx(100 * (2400.0 - 100.0 / 3) / 4800.0)


def test_pue_can_outweigh_a_cleaner_grid() -> None:
    policy = DAY
    looks = outlooks({"a": [300] * 24, "b": [250] * 24}, policy, {"a": 1.2, "b": 1.5})
    got = decide(deployment(), looks, T0, policy)
    # stay 0.5 x 1.2 x 300 x 24 = 4,320 g; move 0.5 x 1.5 x 250 x 24 + 0.5 x 1.2 x 300 / 6
    # = 4,500 + 30 g: moving would cost 210 g.
    assert not got.moves
    assert got.reason is RelocationReason.BELOW_THRESHOLD
    assert got.best is not None
    assert got.best.saving_g == pytest.approx(4320.0 - 4530.0)


def test_the_horizon_mean_is_time_weighted() -> None:
    policy = DAY
    looks = outlooks({"a": [100] * 12 + [500] * 12, "b": [250] * 24}, policy)
    assert looks["a"].mean_g_per_kwh == pytest.approx(300.0)
    assert looks["a"].overlap_g_per_kwh == pytest.approx(100.0)
    got = decide(deployment(power_w=1000.0), looks, T0, policy)
    # stay 1 x 300 x 24 = 7,200; move 1 x 250 x 24 + 1 x 100 / 6 = 6,016.7: 16.4 % > 6.25 %.
    assert got.target_region == "b"
    assert got.saving_g == pytest.approx(7200.0 - 6000.0 - 100.0 / 6)


@pytest.mark.parametrize(("saving_g", "moves"), [(140.0, False), (160.0, True)])
def test_the_gram_bar_includes_the_hysteresis(saving_g: float, moves: bool) -> None:
    policy = RelocationPolicy(
        horizon_s=HOURS * 3600.0, threshold_g=100.0, threshold_pct=0.0, hysteresis=0.5, overlap_s=0
    )
    # 1 kW over 24 h: b must be saving_g / 24 g/kWh cleaner; the bar is 100 x 1.5 = 150 g.
    looks = outlooks({"a": [300] * 24, "b": [300 - saving_g / 24] * 24}, policy)
    got = decide(deployment(power_w=1000.0), looks, T0, policy)
    assert got.moves is moves
    assert got.best is not None
    assert got.best.saving_g == pytest.approx(saving_g)


@pytest.mark.parametrize(("pct", "moves"), [(7.4, False), (7.6, True)])
def test_the_percent_bar_includes_the_hysteresis(pct: float, moves: bool) -> None:
    policy = RelocationPolicy(
        horizon_s=HOURS * 3600.0, threshold_g=0.0, threshold_pct=5.0, hysteresis=0.5, overlap_s=0
    )
    looks = outlooks({"a": [400] * 24, "b": [400 * (1 - pct / 100)] * 24}, policy)
    got = decide(deployment(), looks, T0, policy)
    assert got.moves is moves
    assert got.best is not None
    assert got.best.saving_pct == pytest.approx(pct)


def test_the_overlap_alone_can_stop_a_move() -> None:
    policy = NO_THRESHOLD
    looks = outlooks({"a": [300] * 24, "b": [299.9] * 24}, policy)
    got = decide(deployment(power_w=1000.0), looks, T0, policy)
    # 2.4 g saved over the day, 50 g spent on the overlap.
    assert not got.moves
    assert got.best is not None
    assert got.best.saving_g == pytest.approx(0.1 * 24 - 300.0 / 6)


def test_minimum_stay_blocks_and_says_how_long() -> None:
    policy = DAY
    looks = outlooks({"a": [400] * 24, "b": [100] * 24}, policy)
    got = decide(deployment(stayed_h=5.0), looks, T0, policy)
    assert not got.moves
    assert got.reason is RelocationReason.MIN_STAY
    assert "1.0 h left" in got.message
    assert got.best is not None
    assert got.best.region == "b"


def test_unpriced_regions_and_allowed_regions() -> None:
    policy = DAY
    # c's forecast covers 12 of 24 h: under the 75 % coverage, unpriced.
    looks = outlooks({"a": [400] * 24, "b": [300] * 24, "c": [50] * 12}, policy)
    assert set(looks) == {"a", "b"}
    assert decide(deployment(region="c"), looks, T0, policy).reason is RelocationReason.UNPRICED
    assert decide(deployment(), looks, T0, policy).target_region == "b"
    only_a = decide(deployment(allowed_regions=("a",)), looks, T0, policy)
    assert only_a.reason is RelocationReason.NO_ALTERNATIVE


def test_bad_policy_and_power_are_refused() -> None:
    with pytest.raises(ValueError, match="hysteresis"):
        RelocationPolicy(hysteresis=-0.1)
    with pytest.raises(ValueError, match="min_coverage"):
        RelocationPolicy(min_coverage=0.0)
    policy = DAY
    looks = outlooks({"a": [400] * 24, "b": [100] * 24}, policy)
    with pytest.raises(ValueError, match="power_w"):
        decide(deployment(power_w=-1.0), looks, T0, policy)
    with pytest.raises(ValueError, match="horizon"):
        decide(deployment(), looks, T0, RelocationPolicy())


def test_capacity_grants_the_largest_saving_first() -> None:
    policy = DAY
    looks = outlooks({"a": [400] * 24, "b": [100] * 24, "c": [200] * 24}, policy)
    small = RunningDeployment(job_id="small", region="a", since=T0 - timedelta(days=1), power_w=200)
    large = RunningDeployment(job_id="large", region="a", since=T0 - timedelta(days=1), power_w=600)
    whole = plan_relocations(
        [small, large], looks, T0, policy, {"a": 2, "b": 1, "c": 0}, packed=False
    )
    assert whole["large"].target_region == "b"
    assert whole["small"].reason is RelocationReason.NO_ROOM
    roomy = plan_relocations(
        [small, large], looks, T0, policy, {"a": 2, "b": 1, "c": 1}, packed=False
    )
    assert roomy["small"].target_region == "c"
    halves = [
        RunningDeployment(
            job_id=d.job_id, region="a", since=d.since, power_w=d.power_w, gpu_share=0.5
        )
        for d in (small, large)
    ]
    packed = plan_relocations(halves, looks, T0, policy, {"a": 1, "b": 1}, packed=True)
    assert {d.target_region for d in packed.values()} == {"b"}


def test_a_forecast_starting_after_the_overlap_prices_it_flat() -> None:
    policy = DAY
    now = T0 - timedelta(minutes=20)
    looks = region_outlooks(
        {"a": series([100] * 2 + [400] * 22), "b": series([200] * 24)},
        {"a": 1.0, "b": 1.0},
        now,
        policy,
    )
    # The horizon's covered part is T0 to T0 + 23 h 40 min: 2 h at 100, 21 h 40 min at 400.
    mean = (2 * 100 + (21 + 2 / 3) * 400) / (23 + 2 / 3)
    assert looks["a"].mean_g_per_kwh == pytest.approx(mean)
    assert looks["a"].coverage == pytest.approx((23 + 2 / 3) / 24)
    # The 10 min overlap from now has no value at all: it takes the horizon's mean.
    assert looks["a"].overlap_g_per_kwh == pytest.approx(mean)


def test_measured_saving_by_hand() -> None:
    # Two hours of 1 kWh each after the move; the old copy drew 0.5 kW for its 10 min overlap.
    old = series([400.0] * 3, kind=SeriesKind.ACTUAL)
    new = series([100.0] * 3, kind=SeriesKind.ACTUAL)
    hour = timedelta(hours=1)
    profile = [(T0, T0 + hour, 3.6e6), (T0 + hour, T0 + 2 * hour, 3.6e6)]
    overlap = [(T0, T0 + timedelta(minutes=10), 0.5 * 600 * 1000)]
    got = measured_saving(
        profile, overlap, from_pue=1.0, from_actuals=old, to_pue=1.2, to_actuals=new
    )
    # Stayed: 2 kWh x 400 = 800 g. Moved: 2 kWh x 1.2 x 100 = 240 g + 1/12 kWh x 400 = 33.3 g.
    assert got.stayed_g == pytest.approx(800.0)
    assert got.actual_g == pytest.approx(240.0 + 100.0 / 3)
    assert got.saving_pct == pytest.approx(100 * (800.0 - 240.0 - 100.0 / 3) / 800.0)
    with pytest.raises(ForecastUnavailable):
        measured_saving(
            [(T0 + 5 * hour, T0 + 6 * hour, 3.6e6)],
            [],
            from_pue=1.0,
            from_actuals=old,
            to_pue=1.0,
            to_actuals=new,
        )


# --- properties -------------------------------------------------------------------------------

prices = st.lists(st.floats(10.0, 900.0), min_size=HOURS, max_size=HOURS)
policies = st.builds(
    RelocationPolicy,
    horizon_s=st.sampled_from([4 * 3600.0, 8 * 3600.0, HOURS * 3600.0]),
    threshold_g=st.floats(0.0, 500.0),
    threshold_pct=st.floats(0.0, 30.0),
    hysteresis=st.floats(0.0, 1.0),
    min_stay_s=st.floats(0.0, 12 * 3600.0),
    overlap_s=st.floats(0.0, 1800.0),
)


@st.composite
def situations(draw: st.DrawFn) -> tuple[dict[str, list[float]], dict[str, float]]:
    regions = ["a", "b", "c", "d"][: draw(st.integers(2, 4))]
    return (
        {r: draw(prices) for r in regions},
        {r: draw(st.floats(1.0, 2.0)) for r in regions},
    )


@settings(max_examples=200, deadline=None)
@given(situations(), policies, st.floats(0.0, 1.0), st.floats(0.0, 2000.0))
def test_never_moves_within_the_minimum_stay(
    situation: tuple[dict[str, list[float]], dict[str, float]],
    policy: RelocationPolicy,
    stayed_share: float,
    power_w: float,
) -> None:
    assume(policy.min_stay_s > 0)
    prices_by_region, pues = situation
    looks = outlooks(prices_by_region, policy, pues)
    stayed_h = stayed_share * policy.min_stay_s / 3600 * 0.999
    d = deployment(power_w=power_w, stayed_h=stayed_h)
    assert not decide(d, looks, T0, policy).moves
    room = dict.fromkeys(prices_by_region, 10)
    assert not plan_relocations([d], looks, T0, policy, room, packed=False)["d1"].moves


def hand_saving(
    prices_by_region: Mapping[str, Sequence[float]],
    pues: Mapping[str, float],
    power_w: float,
    target: str,
    policy: RelocationPolicy,
) -> tuple[float, float]:
    """``(grams, percent)`` saved by moving from ``a`` to ``target``, from hourly prices over
    the policy's horizon (whole hours)."""
    kw = power_w / 1000
    hours = round(policy.horizon_s / 3600)
    stay = kw * pues["a"] * sum(prices_by_region["a"][:hours])
    overlap = kw * pues["a"] * prices_by_region["a"][0] * policy.overlap_s / 3600
    move = kw * pues[target] * sum(prices_by_region[target][:hours]) + overlap
    return stay - move, 100 * (stay - move) / stay if stay > 0 else 0.0


@settings(max_examples=300, deadline=None)
@given(situations(), policies, st.floats(0.0, 2000.0))
def test_never_moves_for_a_saving_under_the_threshold(
    situation: tuple[dict[str, list[float]], dict[str, float]],
    policy: RelocationPolicy,
    power_w: float,
) -> None:
    prices_by_region, pues = situation
    looks = outlooks(prices_by_region, policy, pues)
    got = decide(deployment(power_w=power_w), looks, T0, policy)
    savings = {
        r: hand_saving(prices_by_region, pues, power_w, r, policy) for r in looks if r != "a"
    }
    tol = 1e-6 * max(1.0, power_w * HOURS)
    if got.moves:
        assert got.target_region is not None
        grams, pct = savings[got.target_region]
        assert grams >= policy.threshold_g * (1 + policy.hysteresis) - tol
        assert pct >= policy.threshold_pct * (1 + policy.hysteresis) - 1e-6
        assert grams > 0 or policy.threshold_g == 0
        assert grams == pytest.approx(max(g for g, _ in savings.values()), abs=tol)
    else:
        # Staying is right too: no alternative clears both bars (with a margin for rounding).
        assert not any(
            g > policy.bar_g + tol and p > policy.bar_pct + 1e-6 for g, p in savings.values()
        )


def closed_loop(
    frames: Sequence[Mapping[str, Sequence[float]]], power_w: float, policy: RelocationPolicy
) -> list[tuple[int, str]]:
    """Hourly cycles, each with its own forecast (``frames[t]``); the deployment starts in ``a``
    and follows every decision. Returns ``(hour, region)`` of each move."""
    d = RunningDeployment(job_id="d1", region="a", since=T0, power_w=power_w)
    moves = []
    for t, frame in enumerate(frames):
        now = T0 + timedelta(hours=t)
        got = decide(d, outlooks(frame, policy, hours=t), now, policy)
        if got.target_region is not None:
            moves.append((t, got.target_region))
            d = RunningDeployment(job_id="d1", region=got.target_region, since=now, power_w=power_w)
    return moves


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(-0.999, 0.999), min_size=2, max_size=48),
    st.lists(st.floats(50.0, 800.0), min_size=HOURS, max_size=HOURS),
    st.floats(1.0, 30.0),
    st.floats(0.05, 1.0),
    st.floats(0.0, 1800.0),
)
def test_never_moves_on_a_forecast_wobbling_around_the_threshold(
    wobble: list[float],
    shape: list[float],
    threshold_pct: float,
    hysteresis: float,
    overlap_s: float,
) -> None:
    # No minimum stay: the hysteresis alone must hold. Each cycle's forecast puts b at
    # threshold x (1 + w x hysteresis) below a, |w| < 1, for a deployment in a.
    policy = RelocationPolicy(
        horizon_s=HOURS * 3600.0,
        threshold_g=0.0,
        threshold_pct=threshold_pct,
        hysteresis=hysteresis,
        min_stay_s=0.0,
        overlap_s=overlap_s,
    )
    frames = [
        {"a": shape, "b": [v * (1 - threshold_pct / 100 * (1 + w * hysteresis)) for v in shape]}
        for w in wobble
    ]
    assert closed_loop(frames, 400.0, policy) == []


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=48),
    st.lists(st.floats(50.0, 800.0), min_size=HOURS, max_size=HOURS),
    st.floats(0.3, 1.5),
    st.floats(0.5, 30.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1800.0),
)
def test_a_swing_narrower_than_the_dead_band_moves_at_most_once(
    position: list[float],
    shape: list[float],
    low: float,
    threshold_pct: float,
    hysteresis: float,
    overlap_s: float,
) -> None:
    # b's price is a's times r, with r anywhere in [low, low / (1 - bar)^2): leaving a needs
    # r <= 1 - bar and coming back needs r >= 1 / (1 - bar), a wider swing than that.
    policy = RelocationPolicy(
        horizon_s=HOURS * 3600.0,
        threshold_g=0.0,
        threshold_pct=threshold_pct,
        hysteresis=hysteresis,
        min_stay_s=0.0,
        overlap_s=overlap_s,
    )
    bar = policy.bar_pct / 100
    high = low / (1 - bar) ** 2
    frames = [
        {"a": shape, "b": [v * (low + p * (high - low) * 0.999) for v in shape]} for p in position
    ]
    assert len(closed_loop(frames, 400.0, policy)) <= 1


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=48),
    st.lists(st.floats(300.0, 800.0), min_size=HOURS, max_size=HOURS),
    st.floats(10.0, 300.0),
    st.floats(-2.0, 2.0),
    st.floats(0.0, 1.0),
)
def test_a_gram_swing_narrower_than_the_dead_band_moves_at_most_once(
    position: list[float],
    shape: list[float],
    threshold_g: float,
    centre: float,
    hysteresis: float,
) -> None:
    # a - b over the day (g) stays within (centre - bar, centre + bar): a move one way needs
    # the difference >= bar, the way back <= -bar.
    policy = RelocationPolicy(
        horizon_s=HOURS * 3600.0,
        threshold_g=threshold_g,
        threshold_pct=0.0,
        hysteresis=hysteresis,
        min_stay_s=0.0,
        overlap_s=0.0,
    )
    power_w = 1000.0
    per_hour = policy.bar_g / HOURS  # g/kWh x 1 kW x 24 h = bar
    frames = [
        {"a": shape, "b": [v - (centre + 0.999 * p) * per_hour for v in shape]} for p in position
    ]
    assert len(closed_loop(frames, power_w, policy)) <= 1


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.floats(10.0, 900.0), min_size=3, max_size=3), min_size=2, max_size=60),
    st.floats(1.0, 12.0),
)
def test_moves_are_at_least_the_minimum_stay_apart(
    hourly: list[list[float]], min_stay_h: float
) -> None:
    # Any forecasts at all (flat per cycle, three regions, no threshold): the stay still binds.
    policy = RelocationPolicy(
        horizon_s=HOURS * 3600.0, threshold_g=0.0, threshold_pct=0.0, min_stay_s=min_stay_h * 3600
    )
    frames = [{r: [v] * HOURS for r, v in zip("abc", row, strict=True)} for row in hourly]
    # The deployment arrived in a at hour 0.
    hours = [0.0] + [float(t) for t, _ in closed_loop(frames, 300.0, policy)]
    assert all(later - earlier >= min_stay_h for earlier, later in itertools.pairwise(hours))


def test_a_real_swing_is_followed_each_time_the_stay_allows() -> None:
    # The companion of the properties above: when the greener region really flips (by 3x, every
    # 8 h), the loop does follow it, once per flip, never faster than the 6 h minimum stay.
    policy = DAY
    frames = [
        {"a": [100.0] * HOURS, "b": [300.0] * HOURS}
        if (t // 8) % 2 == 0
        else {"a": [300.0] * HOURS, "b": [100.0] * HOURS}
        for t in range(32)
    ]
    assert closed_loop(frames, 400.0, policy) == [(8, "b"), (16, "a"), (24, "b")]

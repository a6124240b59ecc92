"""The plan column's text, built directly for the bulk write (``rows.plan_json``), is exactly
what ``json.dumps`` writes for the document ``rows.plan_values`` gives, for any plan: odd
region names and notes (quotes, backslashes, control and non-ASCII characters), any float
(whole, tiny, huge, non-finite), several windows, times in any zone (written as UTC)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from scheduler.domain import Plan, Policy, Window
from scheduler.store.rows import plan_json, plan_values

zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
times = st.builds(
    lambda s, tz: datetime(2026, 1, 1, tzinfo=UTC).astimezone(tz) + timedelta(microseconds=s),
    st.integers(0, 10**13),
    zones,
)
names = st.text(min_size=1, max_size=12)
windows = st.builds(
    lambda region, start, s: Window(region=region, start=start, end=start + timedelta(seconds=s)),
    names,
    times,
    st.integers(1, 10**6),
)


@given(
    region=names,
    ws=st.lists(windows, min_size=1, max_size=4),
    policy=st.sampled_from(list(Policy)),
    planned_at=times,
    forecast=st.floats(allow_nan=True, allow_infinity=True),
    baseline=st.floats(allow_nan=True, allow_infinity=True),
    issued=st.none() | times,
    note=st.none() | st.text(max_size=40),
)
def test_plan_json_is_json_dumps_of_the_document(
    region: str,
    ws: list[Window],
    policy: Policy,
    planned_at: datetime,
    forecast: float,
    baseline: float,
    issued: datetime | None,
    note: str | None,
) -> None:
    plan = Plan(
        region=region,
        windows=tuple(ws),
        policy=policy,
        planned_at=planned_at,
        forecast_emissions_g=forecast,
        baseline_emissions_g=baseline,
        forecast_issued_at=issued,
        note=note,
    )
    assert plan_json(plan) == json.dumps(plan_values(plan)["plan"])


def test_a_note_with_quotes_and_newlines_reads_back() -> None:
    at = datetime(2026, 3, 2, 12, tzinfo=UTC)
    plan = Plan(
        region='eu "north"',
        windows=(Window(region="eu\\1", start=at, end=at + timedelta(hours=1)),),
        policy=Policy.GREENLIGHT,
        planned_at=at,
        forecast_emissions_g=12.5,
        baseline_emissions_g=20,  # an int where a float is declared: json.dumps writes 20
        note='line one\nline \u00e9\t"two"',
    )
    document = json.loads(plan_json(plan))
    assert document["note"] == plan.note
    assert document["windows"][0]["region"] == "eu\\1"
    assert document["baseline_emissions_g"] == 20
    assert plan_json(plan) == json.dumps(plan_values(plan)["plan"])

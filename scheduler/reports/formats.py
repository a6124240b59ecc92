"""How the human-facing renderers (text, HTML) write numbers, times and user strings.

Machine formats (JSON, CSV) keep full float precision and ISO-8601 UTC; see ``render``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

MISSING = "-"


def iso_utc(when: datetime | None) -> str | None:
    """ISO-8601 in UTC with a ``Z`` suffix (``2024-05-01T12:00:00Z``), or None."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    """The inverse of ``iso_utc`` (any ISO-8601 with an offset), or None."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def fmt_time(when: datetime | None) -> str:
    """``2024-05-01 12:00:00`` in UTC, or ``-``."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if when is not None else MISSING


def fmt_kwh(energy_kwh: float) -> str:
    # Six decimals: a few seconds of a CPU job is ~1e-4 kWh and must not print as zero.
    return f"{energy_kwh:,.6f}"


def fmt_g(mass_g: float) -> str:
    """Grams with 3 decimals, or 3 significant digits below 0.1 g (never a false ``0.000``)."""
    size = abs(mass_g)
    if size < 1e-9 or size >= 0.1:
        return f"{0.0 if size < 1e-9 else mass_g:,.3f}"
    return f"{mass_g:.{2 - math.floor(math.log10(size))}f}"


def fmt_mass(mass_g: float) -> str:
    """A mass for people: ``12.3 kg``, ``412.5 g``, ``3.42 g``, ``58.1 mg``, ``0 g``.

    Never rounds a non-zero mass to zero: below 1 g it is written in mg (3 significant digits
    below 1 mg)."""
    size = abs(mass_g)
    if size < 1e-9:  # float noise of a difference of equal sums (a nanogram is not a figure)
        return "0 g"
    if size >= 10_000:
        return f"{mass_g / 1000:,.1f} kg"
    if size >= 10:
        return f"{mass_g:,.1f} g"
    if size >= 1:
        return f"{mass_g:.2f} g"
    if size >= 0.001:
        return f"{mass_g * 1000:.1f} mg"
    return f"{mass_g * 1000:.3g} mg"


def fmt_pct(pct: float | None) -> str:
    return f"{pct:.1f}%" if pct is not None else MISSING


def fmt_s(duration_s: float) -> str:
    return f"{duration_s:,.0f}"


def printable(text: str) -> str:
    """``text`` with control characters replaced, so a job name cannot drive the terminal."""
    return "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text)


def fmt_filters(
    start: datetime | None,
    end: datetime | None,
    *,
    tenant: str | None = None,
    region: str | None = None,
    group_id: str | None = None,
) -> str:
    """Every filter of a report in words: ``tenant acme, region eu-west, jobs started from ...``;
    ``all jobs`` only when there is no filter at all. User strings are made printable."""
    parts = [
        f"{what} {printable(value)}"
        for what, value in (("tenant", tenant), ("region", region), ("array", group_id))
        if value is not None
    ]
    if start is not None or end is not None:
        parts.append(fmt_span(start, end))
    return ", ".join(parts) if parts else "all jobs"


def fmt_span(start: datetime | None, end: datetime | None) -> str:
    """Which job starts a report covers, in words (UTC; ``end`` exclusive)."""
    if start is None and end is None:
        return "all jobs"
    if end is None:
        return f"jobs started from {fmt_time(start)} UTC"
    if start is None:
        return f"jobs started before {fmt_time(end)} UTC"
    return f"jobs started from {fmt_time(start)} UTC to before {fmt_time(end)} UTC"


# The per-group accounting beyond emissions and savings, for people (see ``detail_cells``).
DETAIL_HEADERS = (
    "jobs",
    "measured_kwh",
    "estimated_kwh",
    "operational",
    "embodied",
    "units",
    "sci_per_r",
    "relocations",
    "reloc_expected",
    "mean_delay",
    "p95_delay",
    "deadline_misses",
    "moved_time",
    "moved_space",
)


def _share(value: float | None) -> str:
    return f"{100 * value:.0f}%" if value is not None else MISSING


def _delay(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value / 3600:.1f} h" if abs(value) >= 3600 else f"{value:,.0f} s"


def detail_cells(group: Mapping[str, Any]) -> list[str]:
    """``DETAIL_HEADERS``' cells of one group in ``report_to_dict``'s shape."""
    return [
        str(group["jobs"]),
        fmt_kwh(group["measured_kwh"]),
        fmt_kwh(group["estimated_kwh"]),
        fmt_mass(group["emissions_g"]),
        fmt_mass(group["embodied_g"]),
        fmt_units(group.get("functional_units"), group.get("functional_unit")),
        fmt_per_r(group.get("sci_g_per_r"), group.get("functional_unit")),
        # .get: the CLI renders a server's JSON, which may predate these keys.
        str(group.get("relocations") or 0),
        fmt_relocation_saving(group.get("relocation_expected_saving_g")),
        _delay(group["mean_delay_s"]),
        _delay(group["p95_delay_s"]),
        str(group["deadline_misses"]),
        _share(group["moved_in_time_share"]),
        _share(group["moved_in_space_share"]),
    ]


def fmt_relocation_saving(expected_saving_g: float | None) -> str:
    """The saving a deployment's moves were expected to make, or ``-`` without a move."""
    return MISSING if expected_saving_g is None else fmt_mass(expected_saving_g)


def fmt_moves(relocations: int, expected_saving_g: float | None) -> str:
    """A job's moves for people: ``2 (exp. 41.3 g)``, ``-`` without one."""
    if not relocations:
        return MISSING
    return f"{relocations} (exp. {fmt_relocation_saving(expected_saving_g)})"


def fmt_units(units: float | None, unit: str | None) -> str:
    """``12,345 steps``, or ``-`` without a count (or, for a group, mixed units)."""
    if units is None or unit is None:
        return MISSING
    return f"{units:,.0f} {unit}" if units == int(units) else f"{units:,.1f} {unit}"


def fmt_per_r(sci_g_per_r: float | None, unit: str | None) -> str:
    """SCI per R: ``3.42 g/1k steps``, or ``-``."""
    if sci_g_per_r is None or unit is None:
        return MISSING
    return f"{fmt_mass(sci_g_per_r)}/1k {unit}"

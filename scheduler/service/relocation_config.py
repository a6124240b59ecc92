"""The service's relocation tunables (``[relocation]`` in the config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.planning.relocation import RelocationPolicy


@dataclass(frozen=True, slots=True, kw_only=True)
class RelocationConfig:
    """Relocation tunables. ``policy``: when a move pays (horizon, thresholds, hysteresis,
    minimum stay, overlap). ``health_timeout_s``: a new copy not healthy this long after its
    move started is stopped and the move rolled back. ``drain_s``: the old copy serves this
    long after the switch (clients that read the old endpoint finish), then it is stopped.
    Both in scheduler time. ``health_check_timeout_s``: one health request's connect and read
    timeout (wall seconds)."""

    enabled: bool = True
    policy: RelocationPolicy = field(default_factory=RelocationPolicy)
    health_timeout_s: float = 600.0
    drain_s: float = 30.0
    health_path: str = "/healthz"
    health_check_timeout_s: float = 2.0
    power_window_s: float = 3600.0

"""Regions: places jobs can run, each priced by one grid zone's carbon intensity."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    """A Ray cluster (or a labelled node group in one cluster) on one electricity grid.

    ``ray_address`` is the region's dashboard / Jobs API URL; None means "the local default
    cluster". ``node_label`` selects a node group inside a shared cluster. ``pue`` is the
    data centre's power usage effectiveness (>= 1.0) applied to measured IT energy.
    """

    name: str
    grid_zone: str
    provider: str
    gpus: int
    pue: float = 1.0
    ray_address: str | None = None
    node_label: str | None = None

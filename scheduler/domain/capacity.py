"""What a cluster (or one node group of it) offers, as its nodes report it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterCapacity:
    """Totals over live nodes: ``cpus`` and ``gpus`` (Ray counts fractions, hence floats) and
    custom resources by name (node-group labels, GPU types such as ``accelerator_type:A100``)."""

    cpus: float
    gpus: float
    resources: Mapping[str, float] = field(default_factory=dict)

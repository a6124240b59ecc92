"""A deployment run as a Ray Serve application instead of a plain entrypoint."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeApp:
    """What Ray Serve deploys: ``import_path`` (``module:attribute``, an application or an
    application builder) and ``config``, the rest of one entry of Serve's declarative
    ``applications`` list (``deployments`` with ``num_replicas`` and ``ray_actor_options`` such
    as ``{"num_gpus": 0.25}``, ``args``, ``runtime_env``, ``logging_config``). Greenlight sets the
    application's ``name`` and ``route_prefix`` (both the run's submission id)."""

    import_path: str
    config: Mapping[str, Any] = field(default_factory=dict)

"""Submit-time checks of a deployment's Ray Serve application (``JobSpec.serve``). Pure.

Greenlight owns the application's ``name`` and ``route_prefix`` (the run's submission id, so
each attempt and each copy of a move is its own application) and the cluster-wide options
(``http_options``, ``proxy_location``): the config may hold the rest of one entry of Serve's
``applications`` list. GPUs are Greenlight's to count: the replicas' ``ray_actor_options.num_gpus``
summed over every deployment (x ``num_replicas``) may not exceed ``resources.gpus``, which is what
the planner reserves, so a Serve application never holds GPUs the planner gave to another job.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from scheduler.domain import InvalidJobSpec, JobKind, JobSpec

# module.sub:attribute (Serve also reads module.attribute).
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$")
MAX_IMPORT_PATH_CHARS = 256
MAX_CONFIG_BYTES = 64 * 1024
ALLOWED_KEYS = frozenset({"deployments", "args", "runtime_env", "logging_config"})
OWNED_KEYS = frozenset({"name", "route_prefix", "import_path", "host", "port"})
MAX_REPLICAS = 1024
# Ray's resource granularity: 1/10,000.
SHARE_UNITS = 10_000


def check_serve(spec: JobSpec) -> None:
    """Raises InvalidJobSpec naming the first thing wrong with ``spec.serve`` (None is fine)."""
    serve = spec.serve
    if serve is None:
        return
    if spec.kind is not JobKind.DEPLOYMENT:
        raise InvalidJobSpec("serve", "a Ray Serve application is for deployments only")
    path = serve.import_path
    if len(path) > MAX_IMPORT_PATH_CHARS or not IMPORT_PATH.match(path):
        raise InvalidJobSpec(
            "serve.import_path",
            f"must be module:attribute (e.g. workers.examples.serve_app:app), got {path[:80]!r}",
        )
    config = dict(serve.config)
    try:
        size_b = len(json.dumps(config, allow_nan=False, separators=(",", ":")).encode())
    except (TypeError, ValueError) as e:
        raise InvalidJobSpec("serve.config", f"must be plain JSON: {e}") from None
    if size_b > MAX_CONFIG_BYTES:
        raise InvalidJobSpec("serve.config", f"is {size_b} bytes; the limit is {MAX_CONFIG_BYTES}")
    for key in config:
        if key in OWNED_KEYS:
            raise InvalidJobSpec(f"serve.config.{key}", "is set by Greenlight; leave it out")
        if key not in ALLOWED_KEYS:
            raise InvalidJobSpec(
                f"serve.config.{key}",
                f"unknown key; allowed: {', '.join(sorted(ALLOWED_KEYS))}",
            )
    gpus = _replica_gpus(config.get("deployments", []))
    if gpus > spec.resources.gpus + 1e-9:
        raise InvalidJobSpec(
            "serve.config.deployments",
            f"the replicas ask for {gpus:g} GPUs in all (num_replicas x ray_actor_options."
            f"num_gpus) but resources.gpus is {spec.resources.gpus:g}: reserve what they hold",
        )


def _replica_gpus(deployments: Any) -> float:
    """GPUs all replicas hold. Raises InvalidJobSpec for a malformed deployments list."""
    field = "serve.config.deployments"
    if not isinstance(deployments, list):
        raise InvalidJobSpec(field, "must be a list of {name, num_replicas, ray_actor_options}")
    total_units = 0
    for i, deployment in enumerate(deployments):
        where = f"{field}.{i}"
        if not isinstance(deployment, Mapping) or not isinstance(deployment.get("name"), str):
            raise InvalidJobSpec(where, "must be an object with the deployment's name")
        if "autoscaling_config" in deployment:
            raise InvalidJobSpec(
                f"{where}.autoscaling_config",
                "autoscaling is not planned for: give a fixed num_replicas",
            )
        replicas = deployment.get("num_replicas", 1)
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise InvalidJobSpec(f"{where}.num_replicas", "must be a whole number ('auto' is not)")
        if not 1 <= replicas <= MAX_REPLICAS:
            raise InvalidJobSpec(f"{where}.num_replicas", f"must be between 1 and {MAX_REPLICAS}")
        options = deployment.get("ray_actor_options", {})
        if not isinstance(options, Mapping):
            raise InvalidJobSpec(f"{where}.ray_actor_options", "must be an object")
        gpus = options.get("num_gpus", 0)
        if (
            not isinstance(gpus, int | float)
            or isinstance(gpus, bool)
            or not math.isfinite(gpus)
            or gpus < 0
            or abs(gpus * SHARE_UNITS - round(gpus * SHARE_UNITS)) > 1e-6
        ):
            raise InvalidJobSpec(
                f"{where}.ray_actor_options.num_gpus",
                "must be a non-negative multiple of 1/10,000",
            )
        total_units += replicas * round(gpus * SHARE_UNITS)
    return total_units / SHARE_UNITS

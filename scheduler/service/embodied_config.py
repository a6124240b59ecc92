"""The embodied-emission factors (SCI's M) the report charges, from the service settings."""

from __future__ import annotations

from scheduler.config import Settings
from scheduler.reports.sci import EmbodiedFactors


def embodied_factors(settings: Settings) -> tuple[EmbodiedFactors, dict[str, EmbodiedFactors]]:
    """``([embodied]``'s factors, each region's own by name)``: a region that sets neither
    ``embodied_gpu_g_per_hour`` nor ``embodied_cpu_core_g_per_hour`` has no entry; one that
    sets one takes the other from ``[embodied]``."""
    default = EmbodiedFactors(
        gpu_g_per_hour=settings.embodied.gpu_g_per_hour,
        cpu_core_g_per_hour=settings.embodied.cpu_core_g_per_hour,
    )
    by_region = {
        r.name: EmbodiedFactors(
            gpu_g_per_hour=(
                default.gpu_g_per_hour
                if r.embodied_gpu_g_per_hour is None
                else r.embodied_gpu_g_per_hour
            ),
            cpu_core_g_per_hour=(
                default.cpu_core_g_per_hour
                if r.embodied_cpu_core_g_per_hour is None
                else r.embodied_cpu_core_g_per_hour
            ),
        )
        for r in settings.regions
        if r.embodied_gpu_g_per_hour is not None or r.embodied_cpu_core_g_per_hour is not None
    }
    return default, by_region

"""Domain records: frozen dataclasses and enums, stdlib only. They know nothing of storage."""

from scheduler.domain.energy import J_PER_KWH, EnergyReport, MeterMethod
from scheduler.domain.errors import (
    ConfigError,
    DispatchError,
    Forbidden,
    ForecastUnavailable,
    GreenlightError,
    InvalidJobSpec,
    InvalidJobSpecs,
    InvalidTransition,
    JobNotFound,
    MeterUnavailable,
    ProviderError,
    RegionNotFound,
    Unauthorized,
)
from scheduler.domain.forecasts import Forecast, IntensityPoint, SeriesKind, Signal
from scheduler.domain.jobs import (
    PLANNABLE_STATES,
    TERMINAL_STATES,
    Job,
    JobEvent,
    JobKind,
    JobSpec,
    JobState,
    Plan,
    Policy,
    Resources,
    Window,
    can_transition,
    effective_deadline,
)
from scheduler.domain.regions import Region
from scheduler.domain.tokens import ApiToken, Principal, Role

__all__ = [
    "J_PER_KWH", "PLANNABLE_STATES", "TERMINAL_STATES", "ApiToken", "ConfigError",
    "DispatchError", "EnergyReport", "Forbidden", "Forecast", "ForecastUnavailable",
    "GreenlightError", "IntensityPoint", "InvalidJobSpec", "InvalidJobSpecs",
    "InvalidTransition", "Job",
    "JobEvent", "JobKind", "JobNotFound", "JobSpec", "JobState", "MeterMethod",
    "MeterUnavailable", "Plan", "Policy", "Principal", "ProviderError", "Region",
    "RegionNotFound", "Resources",
    "Role", "SeriesKind", "Signal", "Unauthorized", "Window", "can_transition",
    "effective_deadline",
]

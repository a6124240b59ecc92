"""The admin carbon-savings report: pure computation (``savings``) and renderers (``render``)."""

from scheduler.reports.emissions import IntensitySource
from scheduler.reports.render import (
    report_to_csv,
    report_to_dict,
    report_to_html,
    report_to_text,
)
from scheduler.reports.savings import (
    PERIODS,
    GroupSavings,
    JobSavings,
    SavingsReport,
    SkippedJob,
    build_savings_report,
)

__all__ = [
    "PERIODS",
    "GroupSavings",
    "IntensitySource",
    "JobSavings",
    "SavingsReport",
    "SkippedJob",
    "build_savings_report",
    "report_to_csv",
    "report_to_dict",
    "report_to_html",
    "report_to_text",
]

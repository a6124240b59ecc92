"""The savings report: emissions, baseline and savings per job and in total."""

from __future__ import annotations

import enum
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse, JSONResponse

from scheduler.api.deps import CurrentPrincipal, ServiceDep
from scheduler.api.errors import error_responses
from scheduler.api.schemas import RegionQuery, TenantQuery, Time
from scheduler.api.slow_lane import slow_lane
from scheduler.reports.method import METHOD_MARKDOWN
from scheduler.reports.render import report_to_csv, report_to_dict, report_to_html, report_to_text
from scheduler.reports.savings import GROUPINGS

router = APIRouter(
    prefix="/v1/reports", tags=["reports"], responses=error_responses(401, 403, 404, 422, 503)
)


class ReportFormat(enum.StrEnum):
    JSON = "json"
    CSV = "csv"
    HTML = "html"
    TEXT = "text"


_FORMATS: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The report in the requested format",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            "text/html": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


@router.get(
    "/savings", response_class=JSONResponse, responses=_FORMATS, description=METHOD_MARKDOWN
)
@slow_lane
def savings_report(
    service: ServiceDep,
    principal: CurrentPrincipal,
    tenant: TenantQuery = None,
    region: RegionQuery = None,
    from_: Annotated[
        Time | None, Query(alias="from", description="Jobs started at or after (ISO-8601)")
    ] = None,
    to: Annotated[Time | None, Query(description="Jobs started before (ISO-8601)")] = None,
    start: Annotated[Time | None, Query(description="Alias of from (kept for old clients)")] = None,
    end: Annotated[Time | None, Query(description="Alias of to (kept for old clients)")] = None,
    period: Annotated[str, Query(description="by_period's periods: day, week or month")] = "day",
    group_by: Annotated[
        str | None,
        Query(description=f"One more grouping, as groups: {', '.join(GROUPINGS)}"),
    ] = None,
    format: ReportFormat = ReportFormat.JSON,
    group_id: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Only this array or sweep")
    ] = None,
) -> Response:
    """Savings report as JSON, CSV, plain text or an HTML page: the method is described below."""
    report = service.savings_report(
        principal,
        tenant=tenant,
        region=region,
        start=from_ if from_ is not None else start,
        end=to if to is not None else end,
        period=period,
        group_id=group_id,
        group_by=group_by,
    )
    if format is ReportFormat.CSV:
        return Response(report_to_csv(report), media_type="text/csv; charset=utf-8")
    if format is ReportFormat.HTML:
        return HTMLResponse(report_to_html(report))
    if format is ReportFormat.TEXT:
        return Response(report_to_text(report), media_type="text/plain; charset=utf-8")
    return JSONResponse(report_to_dict(report))

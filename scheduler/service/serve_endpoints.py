"""Where a deployment run as a Ray Serve application answers, recorded at dispatch.

A plain deployment's runner posts the URL its server writes (``workers.endpoint``); a Serve
application has no runner beside it, so the dispatcher's Serve adapter says where Serve routes it
(``http://<cluster host>:<Serve port>/<submission id>``) and this records it as that attempt's
endpoint: the job's endpoint for a first copy, the move's next endpoint for a new copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from scheduler.domain import Job, JobNotFound, Region
from scheduler.domain.deployments import EndpointConflict
from scheduler.service.context import ServiceContext

log = logging.getLogger(__name__)


def record_serve_endpoint(ctx: ServiceContext, job: Job, region: Region, now: datetime) -> None:
    """Record ``job``'s Serve endpoint when the dispatcher knows it (``serve_endpoint``: the Ray
    adapter has it; a dispatcher without Serve has none and nothing is recorded)."""
    endpoint_of: Callable[[Region, str], str] | None = getattr(
        ctx.dispatcher, "serve_endpoint", None
    )
    if endpoint_of is None or job.spec.serve is None or job.submission_id is None:
        return
    endpoint = endpoint_of(region, job.submission_id)
    try:
        ctx.store.set_endpoint(job.id, job.attempt, endpoint, now)
    except (EndpointConflict, JobNotFound) as e:  # stopped or gone meanwhile: nothing serves
        log.info("endpoint of %s not recorded: %s", job.id, e)

"""Regions on real Ray, both ways, and capacity read from Ray.

One cluster here is a head plus a second ``ray start`` node on this machine, each labelled as a
region's node group; another region is a separate cluster with its own token. Every Ray process
carries its node's marker (``GREENLIGHT_RAY_HEAD``) and the jobs and tasks it runs inherit it,
so a job that prints the marker tells on which node it (and each of its tasks) actually ran.
"""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Iterator

import pytest

from scheduler.dispatch.local_ray import LocalRayHead
from scheduler.dispatch.ray_jobs import RayDispatcher
from scheduler.domain import Region
from scheduler.domain.capacity import ClusterCapacity
from scheduler.domain.runs import RunStatus
from scheduler.service.capacity import LiveRegions
from tests.ray_cluster import LocalRayWorkerNode, machine_ip

pytestmark = pytest.mark.ray

CENTRAL, SOUTH = "gl-eu-central", "gl-eu-south"
WAIT_S = 120.0
# The job's driver and one of its own tasks each print the marker of the node they ran on; the
# task asks for the resources Greenlight hands the job, which keep it in the region's group.
WHERE_CODE = """
import json, os, ray
ray.init()
resources = json.loads(os.environ.get("GREENLIGHT_RAY_RESOURCES", "{}"))
@ray.remote(num_cpus=0.1, resources=resources)
def where():
    return os.environ["GREENLIGHT_RAY_HEAD"]
print("driver=" + os.environ["GREENLIGHT_RAY_HEAD"])
print("task=" + ray.get(where.remote()))
"""


def _region(
    name: str, *, gpus: int = 0, ray_address: str | None = None, node_label: str | None = None
) -> Region:
    return Region(
        name=name,
        grid_zone="DE",
        provider="replay",
        gpus=gpus,
        ray_address=ray_address,
        node_label=node_label,
    )


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[tuple[LocalRayHead, LocalRayWorkerNode]]:
    """A head labelled eu-central (2 CPUs) and a worker node labelled eu-south (1 CPU), both
    on this machine's own address (Ray admits no second node on loopback)."""
    ip = machine_ip()
    if ip is None:
        pytest.skip("no non-loopback address to run a two-node Ray cluster on")
    head = LocalRayHead(
        num_cpus=2,
        num_gpus=0,
        memory_mb=2048,
        object_store_memory_mb=256,
        resources={CENTRAL: 1000},
        auth_mode="disabled",
        node_ip=ip,
    ).start()
    try:
        node = LocalRayWorkerNode(head, resources={SOUTH: 1000}).start()
        try:
            yield head, node
        finally:
            node.stop()
    finally:
        head.stop()


def _run_where(dispatcher: RayDispatcher, region: Region) -> dict[str, str]:
    sid = f"where-{uuid.uuid4().hex[:8]}-1"
    dispatcher.submit(
        region, sid, f"python -c {shlex.quote(WHERE_CODE)}", env={}, gpus=0, cpus=0.1, memory_mb=0
    )
    deadline = time.monotonic() + WAIT_S
    while (info := dispatcher.status(region, sid)).status not in {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.STOPPED,
    }:
        assert time.monotonic() < deadline, f"{sid} still {info.status}"
        time.sleep(0.3)
    logs = dispatcher.logs(region, sid)
    assert info.status is RunStatus.SUCCEEDED, logs
    return dict(
        line.split("=", 1)
        for line in logs.splitlines()
        if "=" in line and line.split("=", 1)[0] in {"driver", "task"}
    )


def test_capacity_is_read_per_cluster_and_per_node_group(
    two_nodes: tuple[LocalRayHead, LocalRayWorkerNode],
) -> None:
    head, _ = two_nodes
    dispatcher = RayDispatcher(head.dashboard_url)

    whole = dispatcher.capacity(_region("all"))
    south = dispatcher.capacity(_region("south", node_label=SOUTH))
    central = dispatcher.capacity(_region("central", node_label=CENTRAL))

    assert (whole.cpus, whole.gpus) == (3.0, 0.0)
    assert whole.resources[CENTRAL] == whole.resources[SOUTH] == 1000
    assert south == ClusterCapacity(cpus=1.0, gpus=0.0, resources={SOUTH: 1000.0})
    assert (central.cpus, central.gpus) == (2.0, 0.0)

    # Planning sees min(configured, reported): 8 configured GPUs on a GPU-less group are 0.
    live = LiveRegions({"south": _region("south", gpus=8, node_label=SOUTH)}, dispatcher)
    assert live["south"].gpus == 8  # nothing read yet: the configured cap
    assert live.refresh() == {}
    assert live["south"].gpus == 0
    assert live.reported["south"].cpus == 1.0


def test_node_group_region_keeps_the_job_and_its_tasks_on_its_group(
    two_nodes: tuple[LocalRayHead, LocalRayWorkerNode],
) -> None:
    head, node = two_nodes
    dispatcher = RayDispatcher(head.dashboard_url)

    south = _run_where(dispatcher, _region("eu-south", node_label=SOUTH))
    central = _run_where(dispatcher, _region("eu-central", node_label=CENTRAL))

    assert south == {"driver": node.marker, "task": node.marker}
    assert central == {"driver": head.marker, "task": head.marker}


def test_region_as_its_own_cluster_with_its_own_token(
    two_nodes: tuple[LocalRayHead, LocalRayWorkerNode],
) -> None:
    head, node = two_nodes
    other = LocalRayHead(
        num_cpus=1,
        num_gpus=0,
        memory_mb=1024,
        object_store_memory_mb=128,
        auth_mode="token",
        auth_token=uuid.uuid4().hex,
    ).start()
    try:
        assert other.auth_token
        dispatcher = RayDispatcher(
            head.dashboard_url, auth_tokens={other.dashboard_url: other.auth_token}
        )
        us_west = _region("us-west", ray_address=other.dashboard_url)

        ran = _run_where(dispatcher, us_west)

        assert ran == {"driver": other.marker, "task": other.marker}
        assert dispatcher.capacity(us_west).cpus == 1.0
        # The default cluster needs no token and is still served by the same dispatcher.
        assert (
            _run_where(dispatcher, _region("eu-south", node_label=SOUTH))["driver"] == node.marker
        )
    finally:
        other.stop()
    assert other.process_ids() == []

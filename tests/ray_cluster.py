"""One private Ray head for a whole test session: loopback only, its own temp dir and free
ports, token auth off for the head and every client, stopped at session end.

``tests/integration/conftest.py`` turns :func:`start_test_head` into the session fixture
``ray_cluster``. The head is small (2 CPUs, no GPU, 4 GiB for tasks, 256 MiB object store) and
carries the custom resource :data:`TEST_NODE_LABEL`, so a region with that ``node_label`` can
run there while any other label stays pending.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time

from ray.util.state import list_nodes

from scheduler.dispatch.local_ray import LocalRayHead
from scheduler.domain import DispatchError

TEST_NODE_LABEL = "greenlight-test-group"
TEST_HEAD_CPUS = 2


def start_test_head(*, auth_mode: str = "disabled", auth_token: str | None = None) -> LocalRayHead:
    """Start and return a test head (``.dashboard_url``, ``.address``); the caller stops it.
    Raises DispatchError when Ray does not come up."""
    head = LocalRayHead(
        num_cpus=TEST_HEAD_CPUS,
        num_gpus=0,
        memory_mb=4096,
        object_store_memory_mb=256,
        resources={TEST_NODE_LABEL: 1000},
        auth_mode=auth_mode,
        auth_token=auth_token,
    )
    return head.start()


def machine_ip() -> str | None:
    """This machine's own (non-loopback) address, where a multi-node test cluster binds: Ray
    admits a second node only off loopback. None when there is no such address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent by a UDP connect
        except OSError:
            return None
        ip: str = probe.getsockname()[0]
    return None if ip.startswith("127.") else ip


class LocalRayWorkerNode(LocalRayHead):
    """A second ``ray start`` node on this machine joined to ``head``: a node group labelled
    ``resources`` (e.g. ``{"eu-south-group": 1000}``) inside the head's cluster. The head must
    bind :func:`machine_ip`, not loopback.

    Its processes carry a marker of their own (``.marker``), which the jobs and tasks it runs
    inherit as ``GREENLIGHT_RAY_HEAD``: it tells which node ran something. Like the head it is
    stopped by pid and marker, never by ``ray stop``.
    """

    def __init__(
        self,
        head: LocalRayHead,
        *,
        resources: dict[str, float],
        num_cpus: int = 1,
        memory_mb: int = 1024,
        object_store_memory_mb: int = 128,
    ) -> None:
        super().__init__(
            num_cpus=num_cpus,
            num_gpus=0,
            memory_mb=memory_mb,
            object_store_memory_mb=object_store_memory_mb,
            resources=resources,
            auth_mode=head.auth_mode,
            auth_token=head.auth_token,
            node_ip=head.address.rpartition(":")[0],
        )
        self._head = head

    def _command(self) -> list[str]:
        head_cmd = super()._command()
        keep = {"--num-cpus", "--num-gpus", "--memory", "--object-store-memory", "--resources"}
        sized = [
            a for i, a in enumerate(head_cmd) if a in keep or (i > 0 and head_cmd[i - 1] in keep)
        ]
        return [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--block",
            "--address",
            self._head.address,
            "--node-ip-address",
            self._node_ip,
            "--dashboard-agent-listen-port",
            str(self._agent_port),
            "--disable-usage-stats",
            *sized,
        ]

    def _wait_ready(self, deadline_s: float) -> None:
        """Poll the head's state API until a live node with this node's resources is listed."""
        wanted = set(self._resources)
        while True:
            if self._proc is None or self._proc.poll() is not None:
                raise DispatchError(f"ray start (worker node) exited early:\n{self._log_tail()}")
            with contextlib.suppress(Exception):  # not up yet: any error means "poll again"
                nodes = list_nodes(address=self._head.dashboard_url, detail=True)
                if any(n.state == "ALIVE" and wanted <= set(n.resources_total) for n in nodes):
                    return
            if time.monotonic() > deadline_s:
                raise DispatchError(f"worker node not ready:\n{self._log_tail()}")
            time.sleep(0.5)

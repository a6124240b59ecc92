"""One private Ray head for a whole test session: loopback only, its own temp dir and free
ports, token auth off for the head and every client, stopped at session end.

``tests/integration/conftest.py`` turns :func:`start_test_head` into the session fixture
``ray_cluster``. The head is small (2 CPUs, no GPU, 4 GiB for tasks, 256 MiB object store) and
carries the custom resource :data:`TEST_NODE_LABEL`, so a region with that ``node_label`` can
run there while any other label stays pending.
"""

from __future__ import annotations

from scheduler.dispatch.local_ray import LocalRayHead

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

"""A lane of its own for the routes that take seconds: reports, the dashboard, 10,000-job batches.

The synchronous routes share a few threads (``api_threads``: more only queue on the GIL). A
savings report over a long history or a batch holds its thread for up to a second or two; a
handful at once would hold them all and every submit behind them would wait. Routes marked
``@slow_lane`` run in the same worker threads under a limiter of their own
(``api_slow_threads``), so they queue behind each other, never in front of a submit.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from anyio.lowlevel import RunVar

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_SLOW_THREADS = 2
# One limiter per event loop (the server's): created when the app starts (``open_lane``).
_limiter: RunVar[CapacityLimiter] = RunVar("greenlight_slow_lane")


def open_lane(threads: int) -> None:
    """Give the running event loop's slow lane ``threads`` threads. Call on that loop."""
    _limiter.set(CapacityLimiter(threads))


def slow_lane(route: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``route`` (synchronous) as an async route that runs it in the slow lane. FastAPI reads
    the parameters and their annotations from ``route`` itself."""

    @functools.wraps(route)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            limiter = _limiter.get()
        except LookupError:  # an app started without its lifespan: open one now
            open_lane(DEFAULT_SLOW_THREADS)
            limiter = _limiter.get()
        return await anyio.to_thread.run_sync(
            functools.partial(route, *args, **kwargs), limiter=limiter
        )

    return run

"""The cyclic garbage collector held off while a batch builds its 10,000 specs, or a plan
cycle reads and places 100,000 jobs.

Both allocate hundreds of thousands of container objects (models, dicts, specs, jobs), so the
collector's thresholds trip again and again, and each older-generation pass walks the whole
heap, the new objects included: a third of a 10,000-job batch's CPU in profiles (py-spy,
issue 8), and 2.3 of the 6.3 s a restarted scheduler took to read 100,000 planned jobs. What
they build holds no reference cycles (frozen dataclasses, rows, dicts); it is freed by
reference counting, so deferring the collector loses nothing. Reference-counted: with two
holders the collector resumes when the last one ends (other threads' cyclic garbage just
waits those seconds).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_was_enabled = True


@contextmanager
def collector_paused() -> Iterator[None]:
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()

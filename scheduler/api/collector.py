"""The cyclic garbage collector held off while a batch builds its 10,000 specs.

A batch allocates hundreds of thousands of container objects (models, dicts, specs), so the
collector's thresholds trip again and again, and each older-generation pass walks the whole
heap of a long-running server: a third of a 10,000-job batch's CPU in profiles (py-spy,
issue 8). What a batch builds holds no reference cycles; it is freed by reference counting
when the request ends, so deferring the collector loses nothing. Reference-counted: with two
batches in flight the collector resumes when the last one ends (other threads' cyclic garbage
just waits those seconds).
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

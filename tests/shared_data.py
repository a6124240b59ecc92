"""Where the real external datasets live for tests and benchmarks.

They are read in place, not copied into the repository: several (Let's Wait Awhile, Alibaba)
carry no licence that allows redistribution. ``GREENLIGHT_SHARED_DATA`` points at them; the
default is ``../shared/data`` beside the checkout. Tests that need them skip, saying why, where
they are absent; the shipped Electricity Maps traces (ODbL) cover the rest.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GREENLIGHT_SHARED_DATA") or REPO.parent / "shared" / "data")

requires_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"the shared real datasets are not at {SHARED_DATA} (set GREENLIGHT_SHARED_DATA)",
)

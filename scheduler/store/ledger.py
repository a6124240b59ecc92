"""The admission ledger as bytes, for the ``ledger`` row of ``scheduler_state``.

An ``.npz`` archive (no pickles): a JSON header (grid, regions, the plan cycle's snapshot time)
and the ledger's three arrays (hard and free GPUs, prices), regions by horizon slots. With
three regions and a 48 h horizon at 300 s slots that is a few KiB, whatever the queue holds.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from scheduler.planning.grid import PlanningGrid
from scheduler.planning.ledger import AdmissionLedger
from scheduler.planning.snapshot import RegionState

FORMAT = 1


@dataclass(frozen=True, slots=True)
class StoredLedger:
    """A ledger and the time of the snapshot its plan cycle read (``snapshot_at``)."""

    ledger: AdmissionLedger
    snapshot_at: datetime


def encode(ledger: AdmissionLedger, snapshot_at: datetime) -> bytes:
    fill = getattr(ledger, "_fill_price", math.nan)
    header = {
        "format": FORMAT,
        "origin": ledger.grid.origin.isoformat(),
        "step_s": ledger.grid.step_s,
        "n_slots": ledger.grid.n_slots,
        "regions": [[r.name, r.gpus, r.pue] for r in ledger.regions],
        "fill_price": None if math.isnan(fill) else fill,
        "snapshot_at": snapshot_at.isoformat(),
    }
    out = io.BytesIO()
    np.savez(
        out,
        header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
        hard=ledger.hard,
        free=ledger.free,
        prices=ledger.prices,
    )
    return out.getvalue()


def decode(body: bytes) -> StoredLedger:
    """Raises ValueError for a body this version cannot read."""
    with np.load(io.BytesIO(body), allow_pickle=False) as archive:
        header = json.loads(archive["header"].tobytes().decode())
        if header.get("format") != FORMAT:
            raise ValueError(f"ledger format {header.get('format')!r} is not {FORMAT}")
        hard, free, prices = archive["hard"], archive["free"], archive["prices"]
    grid = PlanningGrid(
        origin=datetime.fromisoformat(header["origin"]),
        step_s=int(header["step_s"]),
        n_slots=int(header["n_slots"]),
    )
    regions = [RegionState(name=n, gpus=int(g), pue=float(p)) for n, g, p in header["regions"]]
    fill = header["fill_price"]
    ledger = AdmissionLedger(
        grid=grid,
        regions=regions,
        hard=hard.astype(np.int64),
        free=free.astype(np.int64),
        prices=prices.astype(np.float64),
        fill_price=math.nan if fill is None else float(fill),
    )
    return StoredLedger(ledger, datetime.fromisoformat(header["snapshot_at"]))

"""CPU packages and DRAM through Linux powercap RAPL counters (``/sys/class/powercap``).

Each zone ``intel-rapl:<n>`` (and DRAM sub-zones ``intel-rapl:<n>:<m>``) exposes ``name``,
``energy_uj`` (microjoules, wrapping at ``max_energy_range_uj``) and ``max_energy_range_uj``.
Packages (``package-N``) and DRAM are counted; ``core``/``uncore`` sub-zones lie inside their
package and ``psys`` covers the whole platform, so both would count energy twice and are skipped.
AMD Zen exposes the same tree through the same driver. Since CVE-2020-8694 ``energy_uj`` is
often readable by root only: that is reported as MeterUnavailable.
"""

from __future__ import annotations

import threading
from pathlib import Path

from workers.energy.base import Meter, MeterMethod
from workers.energy.errors import MeterError, MeterReadError, MeterUnavailable

POWERCAP_ROOT = Path("/sys/class/powercap")
UJ_PER_J = 1_000_000.0


class _Zone:
    # A plain class, not a dataclass: the runner imports this module before every job.
    __slots__ = ("energy_path", "energy_uj", "last_uj", "max_range_uj", "name")

    def __init__(self, name: str, energy_path: Path, max_range_uj: int, last_uj: int) -> None:
        self.name = name
        self.energy_path = energy_path
        self.max_range_uj = max_range_uj
        self.last_uj = last_uj
        self.energy_uj = 0.0


def _read_int(path: Path, device: str, *, started: bool) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError as e:
        raise MeterUnavailable(device, f"{path} is not readable (root only?)") from e
    except (OSError, ValueError) as e:
        error = MeterReadError if started else MeterUnavailable
        raise error(device, f"cannot read {path}: {e}") from e


def _device_name(zone_dir: Path, zone_name: str) -> str | None:
    """``cpu:package-0`` for a package, ``dram:package-0`` (or ``dram:<n>`` at top level) for
    DRAM; None for zones that would double count."""
    parts = zone_dir.name.split(":")
    if len(parts) == 2 and zone_name.startswith("package-"):
        return f"cpu:{zone_name}"
    if zone_name == "dram":
        if len(parts) == 3:
            parent = zone_dir.parent / f"{parts[0]}:{parts[1]}" / "name"
            try:
                return f"dram:{parent.read_text().strip()}"
            except OSError:
                return f"dram:{parts[1]}"
        return f"dram:{parts[1]}"
    return None


class RaplMeter(Meter):
    """Energy of the CPU packages (``cpu:package-N``) and DRAM (``dram:package-N``).

    ``root`` is the powercap directory (injectable for tests). ``share`` (0 < share <= 1)
    scales every reading: RAPL measures whole sockets, so a job that holds a fraction of the
    node's cores is attributed that fraction. Raises MeterUnavailable when no package zone is
    readable, ValueError for a share outside (0, 1].
    """

    def __init__(self, *, root: Path = POWERCAP_ROOT, share: float = 1.0) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self._share = share
        self._lock = threading.Lock()
        self._zones = self._open_zones(Path(root))

    def devices(self) -> list[str]:
        return [z.name for z in self._zones]

    def method(self, device: str) -> MeterMethod:
        if all(z.name != device for z in self._zones):
            raise KeyError(device)
        return MeterMethod.RAPL

    def read(self) -> dict[str, float]:
        with self._lock:
            for zone in self._zones:
                now_uj = _read_int(zone.energy_path, zone.name, started=True)
                if now_uj >= zone.last_uj:
                    delta_uj = now_uj - zone.last_uj
                else:  # wrapped once since the last read
                    delta_uj = zone.max_range_uj - zone.last_uj + now_uj
                zone.energy_uj += delta_uj
                zone.last_uj = now_uj
            return {z.name: z.energy_uj * self._share / UJ_PER_J for z in self._zones}

    @staticmethod
    def _open_zones(root: Path) -> list[_Zone]:
        if not root.is_dir():
            raise MeterUnavailable(None, f"no powercap directory at {root}")
        zones: list[_Zone] = []
        for zone_dir in sorted(root.glob("intel-rapl:*"), key=lambda p: p.name):
            try:
                zone_name = (zone_dir / "name").read_text().strip()
            except OSError:
                continue
            device = _device_name(zone_dir, zone_name)
            if device is None or any(z.name == device for z in zones):
                continue
            try:
                max_uj = _read_int(zone_dir / "max_energy_range_uj", device, started=False)
                now_uj = _read_int(zone_dir / "energy_uj", device, started=False)
            except MeterError:
                if device.startswith("cpu:"):
                    raise
                continue  # DRAM is a bonus; a package we cannot read is not
            zones.append(
                _Zone(
                    name=device,
                    energy_path=zone_dir / "energy_uj",
                    max_range_uj=max_uj,
                    last_uj=now_uj,
                )
            )
        if not any(z.name.startswith("cpu:") for z in zones):
            raise MeterUnavailable(None, f"no RAPL package zone under {root}")
        return zones

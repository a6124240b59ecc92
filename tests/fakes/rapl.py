"""A scripted Linux powercap tree (``/sys/class/powercap`` layout) in a temp directory.

Zones are directories named like the kernel's (``intel-rapl:0``, ``intel-rapl:0:2``) holding
``name``, ``energy_uj`` and ``max_energy_range_uj``; :meth:`FakePowercap.add_energy` advances a
counter and wraps it at ``max_energy_range_uj`` as the hardware does.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MAX_RANGE_UJ = 262_143_328_850  # a typical package counter range (~262 kJ)


class FakePowercap:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "intel-rapl").mkdir(exist_ok=True)  # the control type dir, not a zone

    def add_zone(
        self, zone: str, name: str, *, energy_uj: int = 0, max_range_uj: int = DEFAULT_MAX_RANGE_UJ
    ) -> Path:
        path = self.root / zone
        path.mkdir()
        (path / "name").write_text(f"{name}\n")
        (path / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        (path / "energy_uj").write_text(f"{energy_uj}\n")
        return path

    def energy_uj(self, zone: str) -> int:
        return int((self.root / zone / "energy_uj").read_text())

    def set_energy(self, zone: str, energy_uj: int) -> None:
        (self.root / zone / "energy_uj").write_text(f"{energy_uj}\n")

    def add_energy(self, zone: str, delta_uj: int) -> None:
        """Advance the counter by ``delta_uj``, wrapping past ``max_energy_range_uj``."""
        max_uj = int((self.root / zone / "max_energy_range_uj").read_text())
        now_uj = self.energy_uj(zone) + delta_uj
        if now_uj > max_uj:
            now_uj -= max_uj
        self.set_energy(zone, now_uj)

    def corrupt(self, zone: str, text: str = "garbage") -> None:
        (self.root / zone / "energy_uj").write_text(text)

"""What a request costs on a device: CPU time and energy; and the memory left to spend.

Energy comes from the kernel's RAPL counters where they are readable
(``/sys/class/powercap/intel-rapl:*``); elsewhere (VMs, most laptops without
permissions, ARM) it is an estimate from CPU seconds, labelled as such.

Which RAPL zones are counted (each top-level zone names itself in its ``name`` file):
- ``psys`` (the platform: the whole SoC, on recent Intel laptops) when there is one, alone:
  it already contains the package's energy, so adding the package would count it twice;
- else the sum of the ``package-N`` zones (one per socket: cores, caches, uncore and the
  integrated GPU; not DRAM). Sub-zones (``intel-rapl:0:0``: core, uncore, dram) are parts of
  or beside their package and are never added; a top-level zone of another name is left out.
A counter counts microjoules from 0 to ``max_energy_range_uj`` inclusive and then wraps to 0,
so a wrapped reading is taken modulo ``max_energy_range_uj + 1``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import psutil

__all__ = ["EnergyMeter", "ESTIMATED_WATTS_PER_CPU_SECOND", "available_memory_bytes"]

log = logging.getLogger(__name__)

# A busy desktop/laptop core draws roughly 5-15 W; 10 W per CPU-second is the
# labelled estimate used when no counter can be read.
ESTIMATED_WATTS_PER_CPU_SECOND = 10.0
_RAPL_ROOT = Path("/sys/class/powercap")


class EnergyMeter:
    """Reads cumulative CPU seconds and joules for this process's machine."""

    def __init__(self, rapl_root: Path = _RAPL_ROOT) -> None:
        self._zones = self._find_zones(rapl_root)
        self.source = "rapl" if self._zones else "estimate"
        self._last_raw: dict[Path, int] = {}
        self._joules = 0.0

    @staticmethod
    def _find_zones(root: Path) -> list[tuple[Path, int]]:
        """``(energy_uj file, counter modulus)`` of the zones to add up (see the module's note)."""
        packages, platform = [], []
        for zone in sorted(root.glob("intel-rapl:[0-9]*")):
            if ":" in zone.name.split("intel-rapl:", 1)[1]:
                continue  # a sub-zone: part of (or beside) its package, never added
            try:
                name = (zone / "name").read_text().strip()
                int((zone / "energy_uj").read_text())
                modulus = int((zone / "max_energy_range_uj").read_text()) + 1  # the counter reaches max, then 0
            except (OSError, ValueError):
                continue
            if name == "psys":
                platform.append((zone / "energy_uj", modulus))
            elif name.startswith("package"):
                packages.append((zone / "energy_uj", modulus))
        return platform or packages  # psys contains the packages: never both

    def read(self) -> tuple[float, float]:
        """``(cpu_seconds, joules)`` since an arbitrary start; subtract two readings."""
        cpu = time.process_time()
        if not self._zones:
            return cpu, cpu * ESTIMATED_WATTS_PER_CPU_SECOND
        for path, modulus in self._zones:
            try:
                raw = int(path.read_text())
            except (OSError, ValueError):
                continue
            last = self._last_raw.get(path)
            if last is not None:
                self._joules += ((raw - last) % modulus) / 1e6  # a wrapped counter counted on from 0
            self._last_raw[path] = raw
        return cpu, self._joules


def available_memory_bytes() -> int | None:
    """Memory that can be given to new work without swapping (psutil's ``available``, on every
    platform psutil supports), or None where it cannot be read."""
    try:
        return int(psutil.virtual_memory().available)
    except (OSError, RuntimeError, AttributeError, NotImplementedError):
        log.debug("could not read the available memory")
        return None

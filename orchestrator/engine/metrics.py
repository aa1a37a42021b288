"""What a request costs on a device: CPU time and energy.

Energy comes from the kernel's RAPL counters where they are readable
(``/sys/class/powercap/intel-rapl:*``); elsewhere (VMs, most laptops without
permissions, ARM) it is an estimate from CPU seconds, labelled as such.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

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
        zones = []
        for zone in sorted(root.glob("intel-rapl:[0-9]*")):
            if ":" in zone.name.split("intel-rapl:", 1)[1]:
                continue  # sub-zones are already counted in their package
            try:
                int((zone / "energy_uj").read_text())
                wrap = int((zone / "max_energy_range_uj").read_text())
            except (OSError, ValueError):
                continue
            zones.append((zone / "energy_uj", wrap))
        return zones

    def read(self) -> tuple[float, float]:
        """``(cpu_seconds, joules)`` since an arbitrary start; subtract two readings."""
        cpu = time.process_time()
        if not self._zones:
            return cpu, cpu * ESTIMATED_WATTS_PER_CPU_SECOND
        for path, wrap in self._zones:
            try:
                raw = int(path.read_text())
            except (OSError, ValueError):
                continue
            last = self._last_raw.get(path)
            if last is not None:
                self._joules += ((raw - last) % wrap) / 1e6
            self._last_raw[path] = raw
        return cpu, self._joules


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, or None where there is no such file."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        log.debug("could not read /proc/meminfo")
    return None

"""The RAPL energy meter on a fake sysfs tree, and the available memory.

Each energy test fails on the meter as it was before (it added a psys zone to the package
zone it contains, and wrapped counters modulo ``max_energy_range_uj`` instead of that + 1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.engine import metrics
from orchestrator.engine.metrics import EnergyMeter, available_memory_bytes

pytestmark = pytest.mark.timeout(30)

MAX_UJ = 262_143_328_850  # a real package zone's max_energy_range_uj


def zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    """One powercap zone folder as the kernel lays it out."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "name").write_text(label + "\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return folder


def advance(folder: Path, energy_uj: int) -> None:
    (folder / "energy_uj").write_text(f"{energy_uj}\n")


def joules_between(meter: EnergyMeter, change: Callable[[], None]) -> float:
    _, before = meter.read()
    change()
    _, after = meter.read()
    return after - before


def test_psys_is_counted_alone_because_it_contains_the_package(tmp_path: Path) -> None:
    package = zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    zone(tmp_path, "intel-rapl:0:0", "core", 500_000)
    psys = zone(tmp_path, "intel-rapl:1", "psys", 5_000_000)
    meter = EnergyMeter(tmp_path)
    assert meter.source == "rapl"

    def work() -> None:  # 2 J in the package, 3 J on the platform (which includes those 2 J)
        advance(package, 3_000_000)
        advance(psys, 8_000_000)

    assert joules_between(meter, work) == pytest.approx(3.0)  # the old meter said 5.0


def test_without_psys_the_packages_are_summed_and_nothing_else(tmp_path: Path) -> None:
    p0 = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    p1 = zone(tmp_path, "intel-rapl:1", "package-1", 0)
    dram_sub = zone(tmp_path, "intel-rapl:0:0", "dram", 0)
    other = zone(tmp_path, "intel-rapl:2", "dram", 0)  # a top-level zone that is not a package
    mmio = zone(tmp_path, "intel-rapl-mmio:0", "package-0", 0)  # the same package read another way
    meter = EnergyMeter(tmp_path)

    def work() -> None:
        advance(p0, 1_500_000)
        advance(p1, 2_500_000)
        for folder in (dram_sub, other, mmio):
            advance(folder, 9_000_000)

    assert joules_between(meter, work) == pytest.approx(4.0)  # the old meter added the top-level dram zone: 13.0


def test_a_wrapped_counter_counts_on_from_zero(tmp_path: Path) -> None:
    # The counter runs 0..max inclusive: from max - 10 it takes 10 uJ to reach max, 1 to wrap
    # to 0 and 5 more to read 5: 16 uJ. The old meter's modulus (max) gave 15.
    small_max = 1_000
    package = zone(tmp_path, "intel-rapl:0", "package-0", small_max - 10, max_uj=small_max)
    meter = EnergyMeter(tmp_path)
    assert joules_between(meter, lambda: advance(package, 5)) == pytest.approx(16e-6)
    # and once more across the same wrap, from a real-sized counter
    big = tmp_path / "big"
    package = zone(big, "intel-rapl:0", "package-0", MAX_UJ - 999_999)
    meter = EnergyMeter(big)
    assert joules_between(meter, lambda: advance(package, 0)) == pytest.approx(1.0)  # old: 0.999999


def test_no_readable_zone_falls_back_to_a_labelled_estimate(tmp_path: Path) -> None:
    folder = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    (folder / "energy_uj").unlink()  # as good as unreadable (most laptops without root)
    meter = EnergyMeter(tmp_path)
    assert meter.source == "estimate"
    cpu, joules = meter.read()
    assert joules == pytest.approx(cpu * metrics.ESTIMATED_WATTS_PER_CPU_SECOND)


def test_available_memory_comes_from_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics.psutil, "virtual_memory", lambda: SimpleNamespace(available=3 * 2**30, total=8 * 2**30))
    assert available_memory_bytes() == 3 * 2**30

    def unreadable() -> None:
        raise OSError("no /proc here")

    monkeypatch.setattr(metrics.psutil, "virtual_memory", unreadable)
    assert available_memory_bytes() is None


def test_available_memory_is_a_real_reading_here() -> None:
    got = available_memory_bytes()
    assert got is not None and 0 < got

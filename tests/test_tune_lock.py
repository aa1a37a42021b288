"""Two processes never tune one model at once: the second waits for the first's lock."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from orchestrator.engine.variants import _tuning
from tests.children import die_with_parent

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys, time
from pathlib import Path
from orchestrator.engine.variants import _tuning
log = Path(sys.argv[2])
with _tuning("smollm2-135m", sys.argv[1]):
    log.write_text("child holds\\n")
    time.sleep(1.0)
    with log.open("a") as f:
        f.write("child done\\n")
"""


def test_a_second_process_waits_for_the_first_tune(tmp_path: Path) -> None:
    log = tmp_path / "order.txt"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(log)], cwd=ROOT, preexec_fn=die_with_parent)
    try:
        deadline = time.monotonic() + 60
        while not log.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.exists(), "the child never took the lock"
        with _tuning("smollm2-135m", tmp_path):  # blocks until the child lets go
            with log.open("a") as f:
                f.write("parent holds\n")
    finally:
        child.wait(timeout=60)
    assert log.read_text().splitlines() == ["child holds", "child done", "parent holds"]


def test_the_lock_is_reentrant_in_one_thread(tmp_path: Path) -> None:
    with _tuning("m", tmp_path), _tuning("m", tmp_path):  # resolve_weights holds it around tune_model
        pass
    with _tuning("m", tmp_path):  # released: taken again at once
        pass

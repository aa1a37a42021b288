"""Child processes that end with the test run: a test killed by its timeout leaves no orphans."""

from __future__ import annotations

import ctypes
import signal
import sys

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for ``subprocess``: on Linux the child gets SIGKILL when the test process
    dies (pytest-timeout ends a stuck run with ``os._exit``, which runs no cleanup)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

"""Where the orchestrator keeps files on this machine: one place for every folder.

* ``models_cache_dir()``: model files and their weight variants. ``$ORCHESTRATOR_CACHE_DIR``
  when set (it has always named this folder), else ``<user cache>/models``.
* ``cache_dir()``: other re-creatable downloads (benchmark data, benchmark-only packages): the
  folder above ``models_cache_dir()``, so that the override moves them too.
* ``state_dir()``: what the user would miss if it were deleted (durable runs, measured backend
  speeds): ``$ORCHESTRATOR_STATE_DIR`` when set, else ``<user state>``.

``<user cache>`` and ``<user state>`` come from ``platformdirs``: on Linux ``$XDG_CACHE_HOME/orchestrator``
and ``$XDG_STATE_HOME/orchestrator`` (by default ``~/.cache/orchestrator`` and ``~/.local/state/orchestrator``,
the folders used before, so existing caches and run stores are still found); on macOS
``~/Library/Caches/orchestrator`` and ``~/Library/Application Support/orchestrator``; on Windows under
``%LOCALAPPDATA%\\orchestrator``. Nothing here creates a folder: the code that writes does.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["APP_NAME", "CACHE_ENV", "STATE_ENV", "cache_dir", "models_cache_dir", "state_dir"]

APP_NAME = "orchestrator"
CACHE_ENV = "ORCHESTRATOR_CACHE_DIR"
STATE_ENV = "ORCHESTRATOR_STATE_DIR"


def _override(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else None


def models_cache_dir() -> Path:
    """``$ORCHESTRATOR_CACHE_DIR``, else the platform's user cache folder for the app, ``/models``."""
    return _override(CACHE_ENV) or platformdirs.user_cache_path(APP_NAME, appauthor=False) / "models"


def cache_dir() -> Path:
    """The folder for the app's other caches: the parent of ``models_cache_dir()``."""
    return models_cache_dir().parent


def state_dir() -> Path:
    """``$ORCHESTRATOR_STATE_DIR``, else the platform's user state folder for the app."""
    return _override(STATE_ENV) or platformdirs.user_state_path(APP_NAME, appauthor=False)

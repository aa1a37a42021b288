"""Cache and state folders: the overrides first, then the platform's folders (XDG on Linux)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from orchestrator import paths
from orchestrator.cli.graph import default_store_path
from orchestrator.cli.route import default_stats_path
from orchestrator.models.catalogue import cache_dir_for
from orchestrator.models.variants import variants_dir

pytestmark = pytest.mark.timeout(30)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG folders are Linux's")


@pytest.fixture
def bare_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No override and no XDG variable; a fake home."""
    for name in (paths.CACHE_ENV, paths.STATE_ENV, "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    return home


def test_overrides_win(bare_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "my-models"))
    monkeypatch.setenv(paths.STATE_ENV, str(tmp_path / "my-state"))
    assert paths.models_cache_dir() == cache_dir_for() == tmp_path / "my-models"
    assert variants_dir() == tmp_path / "my-models" / "variants"
    assert paths.cache_dir() == tmp_path  # the other caches move with the override
    assert paths.state_dir() == tmp_path / "my-state"
    assert default_store_path() == tmp_path / "my-state" / "runs.sqlite3"
    assert default_stats_path() == tmp_path / "my-state" / "backend_stats.json"
    assert cache_dir_for(tmp_path / "given") == tmp_path / "given"  # an argument beats everything


@linux_only
def test_linux_defaults_are_the_folders_used_before(bare_env: Path) -> None:
    assert paths.models_cache_dir() == bare_env / ".cache" / "orchestrator" / "models"
    assert paths.cache_dir() == bare_env / ".cache" / "orchestrator"
    assert paths.state_dir() == bare_env / ".local" / "state" / "orchestrator"
    assert default_store_path() == bare_env / ".local" / "state" / "orchestrator" / "runs.sqlite3"
    assert not (bare_env / ".cache").exists()  # asking creates nothing


@linux_only
def test_xdg_variables_are_honoured(bare_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    assert cache_dir_for() == tmp_path / "xdg-cache" / "orchestrator" / "models"
    assert default_stats_path() == tmp_path / "xdg-state" / "orchestrator" / "backend_stats.json"


def test_no_module_hard_codes_a_home_folder() -> None:
    root = Path(__file__).resolve().parent.parent
    found = [
        str(p.relative_to(root))
        for folder in ("orchestrator", "agents", "tools", "policies", "bench")
        for p in (root / folder).rglob("*.py")
        if any(s in p.read_text(encoding="utf-8") for s in ('".cache"', '".local"', "'.cache'", "'.local'"))
    ]
    assert found == []

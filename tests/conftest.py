"""Shared fixtures. Model-backed tests use the embedded models installed by `make test`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import ModelNotFoundError

# Tests load the shipped model files (the fixtures below are their paths, which the engine uses
# as given, and so does tests/exactness.py's independent reference), and tests that name a
# catalogue model never start a weights tune: a minute of timing whose choice depends on the
# machine's load. tests/test_weights_auto.py and tests/test_tune.py cover weights="auto".
os.environ.setdefault("ORCHESTRATOR_WEIGHTS", "shipped")


def _model_path(name: str) -> Path:
    from orchestrator.models.catalogue import resolve_model

    try:
        return resolve_model(name)
    except ModelNotFoundError as exc:  # the set-up installs them: missing means a broken set-up
        pytest.fail(f"embedded model {name} is not installed ({exc}); run `make test`", pytrace=False)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return _model_path("smollm2-135m")


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    return _model_path("gemma3-270m")


@pytest.fixture(scope="session")
def smollm2(smollm2_path: Path) -> Iterator[object]:
    """One shared engine on smollm2-135m for tests that do not need their own settings."""
    from orchestrator.engine import EngineConfig, LocalEngine

    with LocalEngine(smollm2_path, EngineConfig(n_ctx=4096, max_sequences=16), name="smollm2-135m") as engine:
        yield engine

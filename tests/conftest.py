"""Shared fixtures. Model-backed tests use the embedded models installed by `make test`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import ModelNotFoundError


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

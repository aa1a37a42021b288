"""The sha256 of a model file, hashed at most once per version of the file.

What already knows a file's sha256 is asked first, cheapest first:

1. this process, for the same path, size and modification time;
2. a weight variant the tune made (``models.variants.trusted_variant``: its ``.trusted`` sidecar);
3. a catalogue model (``models.catalogue.pinned_model``: its pinned sha256, checked once and
   remembered in a ``.verified`` sidecar);
4. a sidecar of our own under ``<cache>/digests/`` for any other file (a model given as a path),
   written the first time the file is hashed.

A sidecar counts only while the file's size and modification time are the ones it records;
sidecars are untrusted input (anything malformed is ignored and the file hashed again).
File work only (no llama.cpp).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from pathlib import Path

from orchestrator.errors import ModelFileError
from orchestrator.models.catalogue import cache_dir_for, pinned_model
from orchestrator.models.variants import trusted_variant

__all__ = ["model_sha256"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_known: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def model_sha256(path: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """The sha256 of the file at ``path`` (see the module docstring for how it is remembered)."""
    path = Path(path).resolve()
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelFileError(path, f"cannot stat: {exc.strerror or exc}") from exc
    version = (str(path), st.st_size, st.st_mtime_ns)
    with _lock:
        digest = _known.get(version)
    if digest is None:
        digest = trusted_variant(path, cache_dir) or _catalogue_sha256(path, cache_dir) or _remembered(path, st, cache_dir)
        with _lock:
            _known[version] = digest
    return digest


def _catalogue_sha256(path: Path, cache_dir: str | os.PathLike[str] | None) -> str | None:
    known = pinned_model(path, cache_dir=cache_dir)
    return known.sha256 if known is not None else None


def _remembered(path: Path, st: os.stat_result, cache_dir: str | os.PathLike[str] | None) -> str:
    """Our own sidecar's sha256 while the file is unchanged; else the file hashed now (and remembered)."""
    sidecar = cache_dir_for(cache_dir) / "digests" / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".json")
    record = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    try:
        data = json.loads(sidecar.read_bytes())
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and all(data.get(k) == v for k, v in record.items()):
        digest = data.get("sha256")
        if isinstance(digest, str) and _SHA256.fullmatch(digest):
            return digest
    log.info("hashing %s once (sha256, remembered in %s)", path, sidecar.parent)
    digest = _hash_file(path)
    _write_best_effort(sidecar, json.dumps({**record, "sha256": digest}).encode())
    return digest


def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                hasher.update(chunk)
    except OSError as exc:
        raise ModelFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    return hasher.hexdigest()


def _write_best_effort(path: Path, data: bytes) -> None:
    """Atomically (a temporary file, then a rename); a sidecar that cannot be written only costs a hash next time."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not remember the sha256 in %s: %s", path, exc)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)

"""Prompt prefixes kept on disk: one sequence's KV state for an exact token prefix, for later processes.

File work only (no llama.cpp): ``pinning.py`` takes the state bytes out of a context and puts
them back. One file per prefix, ``<folder>/<name>.kv``, where the name is a hash of the key and
the tokens; its layout::

    8 bytes   magic ``ORCHKV`` + format version
    4 bytes   header length, little-endian
    header    JSON: the ``PrefixKey``, the tokens, the state's size and sha256
    state     the bytes of ``llama_state_seq_get_data``

What a state is valid for (``PrefixKey``): the model file (its sha256), llama.cpp (the
llama-cpp-python version and ggml's CPU features) and the context settings that change the KV
cells' contents or layout (KV types, flash attention, context size, sequences, batch sizes).
Files are untrusted input: before any byte reaches llama.cpp (whose loader may assert on
garbage) the header must parse, name this key and these tokens exactly, and the state must
have its recorded size and sha256. A file that fails is logged, deleted and never used; a
failure costs a recompute, never the process.

Writes go to a temporary file renamed into place, so readers see a whole file or none, and two
processes saving the same prefix each rename a complete file (the last one wins). The folder
is bounded (``max_bytes``): after each save the least recently used files (by modification
time, which a load refreshes) are deleted until the rest fit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from orchestrator.models.catalogue import cache_dir_for

__all__ = ["DEFAULT_MAX_BYTES", "PrefixKey", "PrefixStore", "default_prefix_dir"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1 << 30
_MAGIC = b"ORCHKV\x00\x01"
_HEAD = struct.Struct("<8sI")  # magic, header length
_MAX_HEADER = 64 << 20
_SUFFIX = ".kv"
_STALE_TMP_S = 3600.0  # a temporary file this old was left by a writer that died


def default_prefix_dir() -> Path:
    """``prefixes/`` in the cache folder (``orchestrator.models.catalogue.cache_dir_for``)."""
    return cache_dir_for() / "prefixes"


@dataclass(frozen=True)
class PrefixKey:
    """What a stored KV state is valid for, besides its tokens."""

    model_sha256: str
    llama: str  # llama-cpp-python's version and ggml's CPU features
    settings: Mapping[str, Any] = field(default_factory=dict)  # KV types, flash attention, context layout

    def as_json(self) -> dict[str, Any]:
        return {"model_sha256": self.model_sha256, "llama": self.llama, "settings": dict(sorted(self.settings.items()))}

    def mismatch(self, stored: object) -> str | None:
        """What differs between this key and a header's key (None: they are the same)."""
        if not isinstance(stored, dict):
            return "the header holds no key"
        mine = self.as_json()
        for name in ("model_sha256", "llama"):
            if stored.get(name) != mine[name]:
                return f"it was saved for {name} {str(stored.get(name))[:80]!r}, this engine has {mine[name][:80]!r}"
        theirs = stored.get("settings")
        if not isinstance(theirs, dict):
            return "the header holds no settings"
        for name in sorted(set(theirs) | set(mine["settings"])):
            if theirs.get(name) != mine["settings"].get(name):
                return f"it was saved with {name}={theirs.get(name)!r}, this engine has {name}={mine['settings'].get(name)!r}"
        return None


class _Unusable(Exception):
    """A stored file that must not be used, and why."""


class PrefixStore:
    """Stored prefixes in ``folder``, at most ``max_bytes`` of them. Safe to share between threads
    and processes (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder).expanduser() if folder is not None else default_prefix_dir()
        self.max_bytes = max_bytes

    def path(self, key: PrefixKey, tokens: Sequence[int]) -> Path:
        text = json.dumps([key.as_json(), list(tokens)], separators=(",", ":"))
        return self.folder / (hashlib.sha256(text.encode()).hexdigest()[:40] + _SUFFIX)

    def has(self, key: PrefixKey, tokens: Sequence[int]) -> bool:
        """Whether a file for this prefix is there (not whether it is valid: ``load`` checks)."""
        return self.path(key, tokens).is_file()

    # -- writing ------------------------------------------------------------
    def save(self, key: PrefixKey, tokens: Sequence[int], state: bytes) -> Path | None:
        """Stores ``state`` for ``tokens``; returns its path, or None when it could not (logged)."""
        header = json.dumps({
            "key": key.as_json(), "tokens": list(tokens),
            "state_bytes": len(state), "state_sha256": hashlib.sha256(state).hexdigest(),
        }, separators=(",", ":")).encode()
        size = _HEAD.size + len(header) + len(state)
        if size > self.max_bytes:
            log.warning("not storing a prefix of %d tokens: its %.1f MiB exceed the store's bound of %.1f MiB",
                        len(tokens), size / 2**20, self.max_bytes / 2**20)
            return None
        path = self.path(key, tokens)
        tmp: str | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.folder)
            with os.fdopen(fd, "wb") as f:
                f.write(_HEAD.pack(_MAGIC, len(header)))
                f.write(header)
                f.write(state)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not store a prefix of %d tokens in %s: %s", len(tokens), self.folder, exc)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            return None
        log.info("stored a prefix of %d tokens (%.1f MiB) in %s", len(tokens), size / 2**20, path)
        self.evict(keep=path)
        return path

    def evict(self, keep: Path | None = None) -> None:
        """Deletes the least recently used files (never ``keep``) until the folder holds at most
        ``max_bytes``; also temporary files that writers which died left behind."""
        now = time.time()
        files: list[tuple[float, int, Path]] = []
        total = 0
        for path in self._listing():
            try:
                st = path.stat()
            except OSError:
                continue  # another process deleted it
            if path.suffix != _SUFFIX:  # a temporary file
                if now - st.st_mtime > _STALE_TMP_S:
                    path.unlink(missing_ok=True)
                    continue
            else:
                files.append((st.st_mtime, st.st_size, path))
            total += st.st_size
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            total -= size
            log.info("evicted the stored prefix %s (least recently used; the store holds at most %.1f MiB)",
                     path.name, self.max_bytes / 2**20)

    # -- reading ------------------------------------------------------------
    def load(self, key: PrefixKey, tokens: Sequence[int]) -> bytes | None:
        """The stored state for exactly ``tokens`` under ``key``, checked; None when there is none
        or the file is stale or corrupt (logged, and deleted)."""
        path = self.path(key, tokens)
        try:
            f = path.open("rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read the stored prefix %s: %s", path, exc)
            return None
        with f:
            st = os.fstat(f.fileno())
            try:
                header = _read_header(f, st.st_size)
                problem = key.mismatch(header["key"]) or _token_mismatch(header["tokens"], tokens)
                if problem:
                    raise _Unusable(f"stale: {problem}")
                state = f.read(header["state_bytes"])
                if len(state) != header["state_bytes"] or hashlib.sha256(state).hexdigest() != header["state_sha256"]:
                    raise _Unusable("corrupt: the KV state does not match its recorded sha256")
            except _Unusable as exc:
                self.discard(path, f"{exc}", st)
                return None
        try:
            os.utime(path)  # most recently used
        except OSError:
            pass
        return state

    def discard(self, path: Path, why: str, seen: os.stat_result | None = None) -> None:
        """Logs why a stored file is not used and deletes it (unless another process has since
        replaced it with a new file: ``seen`` is the file that was read)."""
        log.warning("ignoring the stored prefix %s: %s", path, why)
        try:
            if seen is None or os.stat(path).st_ino == seen.st_ino:
                path.unlink(missing_ok=True)
        except OSError:
            pass

    def holds_any(self) -> bool:
        """Whether the folder holds any stored prefix (of any key); cheap: reads no file."""
        return any(p.suffix == _SUFFIX for p in self._listing())

    def entries(self, key: PrefixKey) -> list[tuple[int, ...]]:
        """The token prefixes stored for ``key``, longest first, by their headers alone (``load``
        checks the rest). Files of other keys (other models, settings, llama.cpp) are left alone."""
        found = []
        for path in self._listing():
            if path.suffix != _SUFFIX:
                continue
            try:
                with path.open("rb") as f:
                    header = _read_header(f, os.fstat(f.fileno()).st_size)
            except (OSError, _Unusable):
                continue  # a load of it would say why; its own key's engine deletes it
            if key.mismatch(header["key"]) is None and self.path(key, header["tokens"]) == path:
                found.append(tuple(header["tokens"]))
        return sorted(found, key=len, reverse=True)

    def _listing(self) -> list[Path]:
        try:
            return [p for p in self.folder.iterdir() if p.suffix == _SUFFIX or (p.name.startswith(".") and p.suffix == ".tmp")]
        except OSError:
            return []


def _read_header(f: BinaryIO, file_size: int) -> dict[str, Any]:
    """The header of an open stored file, checked for shape and against the file's size."""
    head = f.read(_HEAD.size)
    if len(head) != _HEAD.size:
        raise _Unusable("corrupt: truncated before its header")
    magic, length = _HEAD.unpack(head)
    if magic != _MAGIC:
        raise _Unusable("corrupt: not a stored prefix of this format")
    if length > _MAX_HEADER or _HEAD.size + length > file_size:
        raise _Unusable("corrupt: truncated in its header")
    try:
        header = json.loads(f.read(length))
    except ValueError:
        raise _Unusable("corrupt: its header is not JSON") from None
    if not isinstance(header, dict):
        raise _Unusable("corrupt: its header is not a JSON object")
    tokens, size, digest = header.get("tokens"), header.get("state_bytes"), header.get("state_sha256")
    if not (isinstance(tokens, list) and tokens and all(type(t) is int and 0 <= t < 2**31 for t in tokens)):
        raise _Unusable("corrupt: its header holds no token list")
    if type(size) is not int or size <= 0 or not isinstance(digest, str):
        raise _Unusable("corrupt: its header holds no state size and sha256")
    if _HEAD.size + length + size != file_size:
        raise _Unusable(f"corrupt: the file has {file_size} bytes, its header says {_HEAD.size + length + size}")
    return header


def _token_mismatch(stored: list[int], tokens: Sequence[int]) -> str | None:
    if len(stored) != len(tokens) or any(a != b for a, b in zip(stored, tokens)):
        return f"it holds another prefix ({len(stored)} tokens) than the {len(tokens)} asked for"
    return None

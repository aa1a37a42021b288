"""The prefix store's files: checked before use, bounded, written atomically (plain bytes, no model).

``tests/test_prefix_pinning.py`` checks the same files against a real model's KV state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
import time

import pytest

from orchestrator.engine.ledger import KVLedger
from orchestrator.engine.prefix_store import PrefixKey, PrefixStore
from orchestrator.engine.slots import KVSlots
from orchestrator.models.digest import model_sha256

pytestmark = pytest.mark.timeout(60)

KEY = PrefixKey("a" * 64, "llama-cpp-python 0.3.36; CPU : AVX2 = 1", {"n_ctx": 1024, "type_k": "f16", "flash_attn": "on"})
TOKENS = (1, 2, 3, 4, 5)
STATE = bytes(range(256)) * 40  # 10 KiB standing in for a KV state


def rewrite_header(path, change) -> None:
    """Rewrites a stored file's header through ``change(header)``, keeping its state (and checksum) valid."""
    data = path.read_bytes()
    (length,) = struct.unpack("<I", data[8:12])
    header = json.loads(data[12 : 12 + length])
    change(header)
    raw = json.dumps(header).encode()
    path.write_bytes(data[:8] + struct.pack("<I", len(raw)) + raw + data[12 + length :])


def test_a_saved_state_loads_back_exactly(tmp_path):
    store = PrefixStore(tmp_path)
    path = store.save(KEY, TOKENS, STATE)
    assert path is not None and path.parent == tmp_path and store.has(KEY, TOKENS)
    assert store.load(KEY, TOKENS) == STATE
    assert store.entries(KEY) == [TOKENS]
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed into place


def test_nothing_stored_is_none_without_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert PrefixStore(tmp_path / "absent").load(KEY, TOKENS) is None
    assert not caplog.records


@pytest.mark.parametrize("other", [
    PrefixKey("b" * 64, KEY.llama, KEY.settings),  # another model file
    PrefixKey(KEY.model_sha256, "llama-cpp-python 0.3.37; CPU : AVX2 = 1", KEY.settings),  # another llama.cpp
    PrefixKey(KEY.model_sha256, KEY.llama, {**KEY.settings, "type_k": "q8_0"}),  # another KV type
    PrefixKey(KEY.model_sha256, KEY.llama, {**KEY.settings, "n_ctx": 2048}),  # another context layout
])
def test_a_file_saved_under_another_key_is_stale_logged_and_deleted(tmp_path, caplog, other):
    """A file found under this key's name whose header names another key (copied, renamed, or
    written by another build) is never trusted."""
    store = PrefixStore(tmp_path)
    theirs = store.save(other, TOKENS, STATE)
    mine = store.path(KEY, TOKENS)
    os.replace(theirs, mine)
    with caplog.at_level(logging.WARNING, logger="orchestrator.engine.prefix_store"):
        assert store.load(KEY, TOKENS) is None
    assert "stale" in caplog.text and mine.name in caplog.text
    assert not mine.exists()


def test_a_file_holding_other_tokens_is_stale(tmp_path, caplog):
    store = PrefixStore(tmp_path)
    path = store.save(KEY, TOKENS, STATE)
    rewrite_header(path, lambda h: h.update(tokens=[1, 2, 3, 4, 6]))
    with caplog.at_level(logging.WARNING):
        assert store.load(KEY, TOKENS) is None
    assert "stale" in caplog.text and "another prefix" in caplog.text
    assert not path.exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "append", "magic", "header", "empty", "huge_header"])
def test_a_corrupt_or_truncated_file_is_logged_and_deleted(tmp_path, caplog, damage):
    store = PrefixStore(tmp_path)
    path = store.save(KEY, TOKENS, STATE)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-100] ^= 0xFF  # in the state: only the checksum can tell
    elif damage == "truncate":
        del data[-1000:]
    elif damage == "append":
        data += b"\0" * 10
    elif damage == "magic":
        data[:8] = b"GGUF\0\0\0\0"
    elif damage == "header":
        data[12:20] = b"\xff" * 8
    elif damage == "empty":
        data = bytearray()
    elif damage == "huge_header":
        data[8:12] = struct.pack("<I", 2**32 - 1)
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert store.load(KEY, TOKENS) is None
    assert "corrupt" in caplog.text
    assert not path.exists()


def test_a_valid_header_with_a_wrong_checksum_is_corrupt(tmp_path, caplog):
    store = PrefixStore(tmp_path)
    path = store.save(KEY, TOKENS, STATE)
    rewrite_header(path, lambda h: h.update(state_sha256=hashlib.sha256(b"other").hexdigest()))
    with caplog.at_level(logging.WARNING):
        assert store.load(KEY, TOKENS) is None
    assert "sha256" in caplog.text


def test_the_disk_bound_evicts_the_least_recently_used(tmp_path):
    size = len(STATE) + 1024  # one file, about
    store = PrefixStore(tmp_path, max_bytes=3 * size)
    prefixes = [(i, i + 1, i + 2) for i in range(3)]
    paths = [store.save(KEY, p, STATE) for p in prefixes]
    assert all(p is not None and p.exists() for p in paths)
    past = time.time() - 100
    for age, path in enumerate(paths):  # saved in this order, a second apart
        os.utime(path, (past + age, past + age))
    assert store.load(KEY, prefixes[0]) == STATE  # using the oldest makes it the most recent
    fourth = store.save(KEY, (9, 9, 9), STATE)
    assert fourth is not None and fourth.exists()
    assert not paths[1].exists()  # the least recently used went
    assert paths[0].exists() and paths[2].exists()
    assert sum(p.stat().st_size for p in tmp_path.glob("*.kv")) <= store.max_bytes


def test_a_state_over_the_bound_is_not_stored(tmp_path, caplog):
    store = PrefixStore(tmp_path, max_bytes=len(STATE) // 2)
    with caplog.at_level(logging.WARNING):
        assert store.save(KEY, TOKENS, STATE) is None
    assert "exceed" in caplog.text and not list(tmp_path.iterdir())


def test_temporary_files_of_dead_writers_are_cleaned(tmp_path):
    store = PrefixStore(tmp_path)
    dead = tmp_path / ".x.kv.abc.tmp"
    dead.write_bytes(b"partial")
    os.utime(dead, (time.time() - 7200, time.time() - 7200))
    fresh = tmp_path / ".y.kv.def.tmp"  # a writer at work now: left alone
    fresh.write_bytes(b"partial")
    store.save(KEY, TOKENS, STATE)
    assert not dead.exists() and fresh.exists()


def test_two_writers_of_the_same_prefix_leave_a_whole_file(tmp_path):
    """Each writer renames a complete file into place; readers meanwhile see a whole file or none."""
    store = PrefixStore(tmp_path)
    states = [bytes([i]) * 200_000 for i in (1, 2)]
    errors: list[BaseException] = []
    seen: list[bytes | None] = []

    def write(state: bytes) -> None:
        try:
            for _ in range(15):
                assert store.save(KEY, TOKENS, state) is not None
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(s,)) for s in states]
    for w in writers:
        w.start()
    while any(w.is_alive() for w in writers):
        seen.append(store.load(KEY, TOKENS))
    for w in writers:
        w.join()
    assert not errors
    assert store.load(KEY, TOKENS) in states
    assert all(s is None or s in states for s in seen)


def test_entries_list_this_keys_prefixes_only(tmp_path):
    store = PrefixStore(tmp_path)
    store.save(KEY, TOKENS, STATE)
    store.save(KEY, TOKENS[:3], STATE)
    store.save(PrefixKey("c" * 64, KEY.llama, KEY.settings), (7, 8), STATE)
    (tmp_path / "junk.kv").write_bytes(b"not a stored prefix")
    assert store.entries(KEY) == [TOKENS, TOKENS[:3]]  # longest first
    assert store.holds_any() and not PrefixStore(tmp_path / "none").holds_any()


def test_a_model_files_sha256_is_hashed_once_and_remembered(tmp_path, monkeypatch):
    from orchestrator.models import digest

    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + b"x" * 5000)
    real = hashlib.sha256(model.read_bytes()).hexdigest()
    assert model_sha256(model) == real
    [sidecar] = (tmp_path / "cache" / "digests").glob("*.json")
    # A later process (this one, forgetting) believes the sidecar while the file is unchanged:
    # the sidecar's sha256 is what it returns, without reading the file.
    monkeypatch.setattr(digest, "_known", {})
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "sha256": "f" * 64}))
    assert model_sha256(model) == "f" * 64
    # A changed file (another modification time) is hashed again.
    st = model.stat()
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    assert model_sha256(model) == real


class _FakeContext:
    def seq_cp(self, *args: int) -> None: ...

    def seq_rm(self, *args: int) -> None: ...


def test_pinned_prefixes_are_evicted_after_every_unpinned_one():
    ledger = KVLedger(100)
    slots = KVSlots(_FakeContext(), ledger, n_slots=4, cache_slots=2)  # type: ignore[arg-type]
    pinned, plain = slots.open(), slots.open()
    ledger.append(pinned, [1] * 10)
    ledger.append(plain, [2] * 10)
    slots.keep(pinned, pinned=True)
    slots.keep(plain)  # the most recently used, but not pinned
    assert slots.make_room(85, growth=0, keep=None)
    assert slots.cached == [pinned] and slots.pinned == 1
    third = slots.open()
    ledger.append(third, [3] * 5)
    slots.keep(third)
    fourth = slots.open()
    ledger.append(fourth, [4] * 5)
    slots.keep(fourth)  # over cache_slots: the older unpinned one goes, the pin stays
    assert slots.cached == [pinned, fourth]
    fifth = slots.open()
    slots.keep(fifth, pinned=True)
    assert slots.cached == [pinned, fifth] and slots.pinned == 2
    sixth = slots.open()
    slots.keep(sixth)  # every other cached prefix is pinned: an unpinned one is not kept
    assert slots.cached == [pinned, fifth]

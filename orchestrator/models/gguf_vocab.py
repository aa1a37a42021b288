"""Is a GGUF vocabulary consistent with its type? A pure check on the header's metadata.

llama.cpp trusts the vocabulary it loads. An SPM ("llama") vocabulary maps text it does not
know to byte tokens ``<0x00>``..``<0xFF>``; when they are missing, ``llama_tokenize`` throws a
C++ ``std::out_of_range`` that nothing catches, and the process aborts, on the first text with
such a character. This check refuses such files before llama.cpp sees them; the probe child
(``orchestrator.engine.probe``) then tokenizes real text to catch what no header check can.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["vocab_problem"]

_PER_TOKEN = ("tokenizer.ggml.scores", "tokenizer.ggml.token_type")


def vocab_problem(metadata: Mapping[str, Any], tokens: Sequence[str], embedding_rows: int | None) -> str | None:
    """What is wrong with the vocabulary, or None.

    ``metadata`` maps keys to values as the GGUF reader keeps them: arrays are objects with
    ``type_name`` and ``count``. ``tokens`` is the token list; ``embedding_rows`` the number of
    rows of ``token_embd.weight`` (None when the file has no such matrix).
    """
    token_array = metadata.get("tokenizer.ggml.tokens")
    if token_array is None:
        return None  # no vocabulary: llama.cpp refuses (or expects) that by itself
    if getattr(token_array, "type_name", None) != "string":
        return f"tokenizer.ggml.tokens should be an array of strings, got {_describe(token_array)}"
    n = token_array.count
    # 1. Per-token arrays are read by token id: one entry per token, no fewer.
    for key in _PER_TOKEN:
        per_token = metadata.get(key)
        if per_token is not None and _count(per_token) != n:
            return f"{key} has {_describe(per_token)} for {n} tokens"
    # 2. The embedding has one row per token.
    if embedding_rows is not None and embedding_rows != n:
        return f"token_embd.weight has rows for {embedding_rows} tokens, the vocabulary {n}"
    # 3. What each tokenizer type needs to map any text.
    kind = metadata.get("tokenizer.ggml.model")
    if kind == "llama":  # SentencePiece: unknown text falls back to byte tokens
        known = set(tokens)
        # llama.cpp looks for "<0xAB>" first, then (ASCII only) the byte itself as a token.
        missing = [b for b in range(256) if f"<0x{b:02X}>" not in known and not (b < 0x80 and chr(b) in known)]
        if missing:
            return (f"an SPM ('llama') vocabulary needs the byte tokens <0x00>..<0xFF>, and {len(missing)} are "
                    f"missing (the first <0x{missing[0]:02X}>): is it really SentencePiece?")
        if metadata.get("tokenizer.ggml.scores") is None:
            return "an SPM ('llama') vocabulary needs tokenizer.ggml.scores"
    elif kind == "gpt2" and not _count(metadata.get("tokenizer.ggml.merges")):
        return "a BPE ('gpt2') vocabulary needs tokenizer.ggml.merges"
    return None


def _count(value: Any) -> int | None:
    return value.count if hasattr(value, "count") and hasattr(value, "type_name") else None


def _describe(value: Any) -> str:
    if hasattr(value, "type_name") and hasattr(value, "count"):
        return f"an array of {value.count} {value.type_name}"
    return f"a {type(value).__name__}"

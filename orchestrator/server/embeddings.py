"""``POST /v1/embeddings`` in OpenAI's shape: one request embeds a batch of texts.

The served model must be able to embed (a local model: ``LocalBackend.embed``, mean-pooled and
L2-normalised, each text cut to its first 512 tokens); any other is a 400. ``input`` is one
string or a list of them (at most ``MAX_EMBED_INPUTS``; token-id inputs are refused by the
schema). ``encoding_format`` ``"base64"`` (what the official client asks for by default) gives
each vector as little-endian float32 bytes in base64; ``dimensions`` is honoured only when it is
the model's own size (vectors are not cut). ``usage.prompt_tokens`` counts the tokens embedded.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from orchestrator.server.http_errors import ApiError
from orchestrator.server.schemas import MAX_CONTENT_CHARS, MAX_EMBED_INPUTS, EmbeddingBody

__all__ = ["embedding_response"]

_MAX_TOKENS_EMBEDDED = 512  # what LocalEngine.embed reads of each text


async def embedding_response(backend: Any, body: EmbeddingBody, admit: Callable[[], Awaitable[None]], release: Callable[[], None]) -> dict:
    """The ``list`` object for ``body``, computed by ``backend`` within one admission slot."""
    embed = getattr(backend, "embed", None)
    if embed is None:
        raise ApiError(400, f"model {body.model!r} cannot embed (serve a local model for embeddings)", param="model")
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts or len(texts) > MAX_EMBED_INPUTS:
        raise ApiError(400, f"input must hold 1 to {MAX_EMBED_INPUTS} texts", param="input")
    for i, text in enumerate(texts):
        if not text or len(text) > MAX_CONTENT_CHARS:
            raise ApiError(400, f"each input must have 1 to {MAX_CONTENT_CHARS} characters", param=f"input.{i}")
    await admit()
    try:
        vectors = await embed(texts)
    finally:
        release()
    size = len(vectors[0]) if vectors else 0
    if body.dimensions is not None and body.dimensions != size:
        raise ApiError(400, f"this model's embeddings have {size} dimensions; other sizes are not supported", param="dimensions")
    count = getattr(backend, "count_tokens", None)
    tokens = sum(min(count(t), _MAX_TOKENS_EMBEDDED) for t in texts) if count is not None else 0
    data = [{"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)} for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": body.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")

"""Features for the learned router from the local model: ``Router(featurize=embedding_featurizer(...))``.

    engine = LocalEngine("smollm2-135m")
    featurize = embedding_featurizer(engine, task_types=("fact", "arithmetic"), projection=pca)
    router = Router([small, large], policies=[PrivacyPolicy(), LearnedPolicy(model, threshold)],
                    featurize=featurize)

Each request becomes ``policies.learned.local_features``: the estimated prompt length, the
task type (one-hot, from ``task_type_of``), and the local model's embedding of the request's
text (the prompt, or the last user message), projected by a fitted ``PCAProjection`` when one
is given (the same one the ``LogisticRouter`` was trained with). The embedding is computed
on the device; nothing leaves it.

``featurize`` blocks while the engine embeds (a short text takes milliseconds to tens of
milliseconds on a small model); the ``Router`` calls it while deciding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from orchestrator.types import GenerationRequest
from policies.learned import local_features
from policies.projection import PCAProjection
from policies.routing import RouteRequest

__all__ = ["Embeds", "embedding_featurizer", "text_to_embed"]


class Embeds(Protocol):
    """What the featurizer needs of an engine: ``LocalEngine.embed``."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def text_to_embed(request: GenerationRequest) -> str:
    """The raw prompt, or the content of the last user message (else of the last message)."""
    if request.prompt is not None:
        return request.prompt
    messages = request.messages or ()
    users = [m for m in messages if m.role == "user"]
    return (users or list(messages))[-1].content


def embedding_featurizer(
    engine: Embeds,
    task_types: Sequence[str] = (),
    *,
    task_type_of: Callable[[GenerationRequest], str] | None = None,
    projection: PCAProjection | None = None,
    text_of: Callable[[GenerationRequest], str] = text_to_embed,
) -> Callable[[GenerationRequest], tuple[float, ...]]:
    """A ``featurize(request)`` for ``Router``: prompt length, task type, the (projected) embedding."""
    types = tuple(task_types)

    def featurize(request: GenerationRequest) -> tuple[float, ...]:
        # 1. The embedding of the request's own text, from the local model.
        vector = engine.embed([text_of(request)])[0]
        if projection is not None:
            vector = projection.transform(vector)[0]
        # 2. Length as the policies estimate it, and the task type.
        tokens = RouteRequest.of(request).prompt_tokens
        task_type = task_type_of(request) if task_type_of is not None else ""
        return tuple(float(x) for x in local_features(tokens, task_type, types, vector))

    return featurize

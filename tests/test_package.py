"""Package surface: explicit exports, light imports, the right ``agents``."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import orchestrator

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "module",
    [
        "orchestrator",
        "orchestrator.errors",
        "orchestrator.types",
        "orchestrator.engine",
        "orchestrator.backends",
        "orchestrator.backends.remote",
        "orchestrator.backends.sse",
        "orchestrator.backends.retry",
        "orchestrator.backends.circuit",
        "orchestrator.backends.openai_wire",
        "orchestrator.models",
        "orchestrator.taskgraph.graph",
        "orchestrator.taskgraph.scheduler",
        "orchestrator.taskgraph.store",
        "orchestrator.taskgraph.runs",
        "orchestrator.taskgraph.patterns",
        "orchestrator.taskgraph.export",
        "orchestrator.cli.graph",
        "agents",
        "agents.patterns",
        "tools",
        "tools.grammar",
        "agents.agent",
        "agents.loop",
        "orchestrator.agent_runner",
        "policies.approvals",
        "tools.tool",
        "tools.validation",
        "tools.builtin",
        "tools.schema",
        "tools.hints",
        "tools.docstrings",
        "tools.registry",
        "policies",
        "policies.routing",
        "policies.privacy",
        "policies.connectivity",
        "policies.budgets",
        "policies.cascade",
        "policies.learned",
        "policies.evaluation",
        "orchestrator.routing.router",
        "orchestrator.routing.hedge",
        "orchestrator.routing.backend_stats",
        "orchestrator.cli.route",
        "orchestrator.facade",
        "orchestrator.sync_facade",
        "orchestrator.cli.serve",
        "orchestrator.server",
        "orchestrator.server.app",
        "orchestrator.server.config",
        "orchestrator.server.convert",
        "orchestrator.server.http_errors",
        "orchestrator.server.local_tools",
        "orchestrator.server.run",
        "orchestrator.server.schemas",
        "orchestrator.server.streaming",
        "orchestrator.server.embeddings",
        "orchestrator.server.fields",
        "orchestrator.server.health",
        "orchestrator.routing.egress",
        "tools.output_spec",
        "orchestrator.engine.probe",
        "orchestrator.engine._probe_child",
        "orchestrator.cli.models_check",
        "orchestrator.cli.progress",
        "orchestrator.cli.plots",
        "orchestrator.engine.embedder",
        "orchestrator.routing.features",
        "policies.projection",
    ],
)
def test_every_name_in_all_exists(module):
    mod = importlib.import_module(module)
    assert isinstance(mod.__all__, list | tuple)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{module}.{name}"


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

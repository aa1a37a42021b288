"""Sync tools cannot hang the process: the calculator bounds its big-integer work, a sync tool
that outlives its timeout is abandoned and reported, and it does not hold up the process's exit."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import anyio
import pytest

from orchestrator.errors import ToolCallError
from orchestrator.taskgraph.daemon_threads import abandoned_calls, run_in_daemon_thread
from tools.builtin import MAX_ROUND_DIGITS, calculator

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    return done, time.perf_counter() - start


@pytest.mark.timeout(120)
def test_calculator_refuses_round_digits_that_drive_huge_powers():
    # Regression: round(1, -10**8) never returned (it builds 10**(10**8) holding the GIL), so it
    # runs in a child here; a hang shows as TimeoutExpired, not as a frozen test process.
    code = """
        from tools.builtin import calculator
        from orchestrator.errors import ToolCallError
        for expression in ("round(1, -10**8)", "round(1, -10**7)", "round(2.5, 10**9)", "round(7, 2.5)"):
            try:
                calculator(expression)
            except ToolCallError as exc:
                print(exc)
            else:
                print("computed", expression)
    """
    try:
        done, _ = _python(code, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the calculator hung on round() with a huge digit count")
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 4, (done.stdout, done.stderr)
    assert all("round(): the number of digits" in line for line in lines), lines


def test_calculator_round_within_bounds():
    assert calculator("round(1.2345, 2)") == 1.23
    assert calculator(f"round(123456, -{MAX_ROUND_DIGITS})") == 0
    assert calculator("round(10**100, -99)") == 10**100
    with pytest.raises(ToolCallError, match="between"):
        calculator(f"round(1, {MAX_ROUND_DIGITS + 1})")


@pytest.mark.timeout(120)
def test_a_hung_sync_tool_does_not_hold_up_the_process_exit():
    # Regression: sync tools ran in anyio's worker threads, which Python joins at exit: a tool
    # stuck in a 60 s sleep kept the process alive for 60 s after main returned.
    code = """
        import json, time, anyio
        from agents.agent import Agent
        from orchestrator.agent_runner import run_agent
        from orchestrator.backends.fake import ScriptedBackend
        from tools.tool import tool

        @tool(timeout_s=0.5)
        def stuck() -> str:
            \"\"\"Never comes back in time.\"\"\"
            time.sleep(60)
            return "late"

        replies = [json.dumps({"calls": [{"name": "stuck", "arguments": {}}]}), json.dumps({"answer": "gave up"})]
        result = anyio.run(lambda: run_agent(Agent("a", "x", tools=(stuck,)), "t", ScriptedBackend(replies)))
        print(result.output, result.calls[0].error)
    """
    try:
        done, wall = _python(code, timeout=50)
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit while a sync tool slept")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("gave up") and "timeout of 0.5 s" in done.stdout, done.stdout
    assert wall < 30, wall  # the child imports the package and exits; the tool's 60 s sleep is not waited for


def test_an_abandoned_call_is_reported_and_its_end_logged(caplog):
    release = threading.Event()

    def slow() -> str:
        release.wait(30)
        return "late"

    async def main() -> None:
        with anyio.move_on_after(0.2):
            await run_in_daemon_thread(slow, name="slow#1")
        assert "slow#1" in abandoned_calls()

    caplog.set_level(logging.WARNING, logger="orchestrator.taskgraph.daemon_threads")
    anyio.run(main)
    assert any("still running" in r.message for r in caplog.records)
    release.set()
    deadline = time.monotonic() + 10
    while "slow#1" in abandoned_calls() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "slow#1" not in abandoned_calls()
    assert any("ended after" in r.message for r in caplog.records)


def test_daemon_thread_calls_return_values_and_raise_errors():
    async def main() -> tuple[object, str]:
        value = await run_in_daemon_thread(lambda: json.loads("[1, 2]"), name="ok")
        try:
            await run_in_daemon_thread(lambda: json.loads("{"), name="bad")
        except ValueError as exc:
            return value, type(exc).__name__
        return value, "no error"

    assert anyio.run(main) == ([1, 2], "JSONDecodeError")

"""What people expect of a command line: help and defaults on every flag, --version, one-line
errors that name the flag (exit status 2), progress bars only on a terminal, and ``chat``."""

from __future__ import annotations

import argparse
import io
import signal
from importlib import metadata

import pytest

from orchestrator.backends.fake import ScriptedBackend
from orchestrator.cli import main
from orchestrator.cli.chat import ChatLoop, ChatSettings
from orchestrator.cli.parser import build_parser
from orchestrator.cli.progress import CountBar, ProgressBar
from orchestrator.sync_facade import SyncOrchestrator
from orchestrator.types import SamplingParams

pytestmark = pytest.mark.timeout(120)


def _parsers(parser: argparse.ArgumentParser, path: str = "orchestrator"):
    """Every parser of the tree, with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_every_flag_of_every_command_has_help_and_shows_its_default() -> None:
    missing, no_default = [], []
    for path, parser in _parsers(build_parser()):
        helps = {a.dest: h for a, h in ((a, parser.formatter_class("x")._get_help_string(a)) for a in parser._actions)}
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = action.option_strings[-1] if action.option_strings else action.dest
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {name}")
            default = action.default
            meaningful = not (default is None or default is False or default is argparse.SUPPRESS or default == [])
            if action.option_strings and meaningful and "default" not in (helps[action.dest] or ""):
                no_default.append(f"{path} {name}")
    assert missing == [], f"flags without help text: {missing}"
    assert no_default == [], f"flags whose help does not show the default: {no_default}"


def test_the_main_commands_show_examples() -> None:
    for command in ("generate", "chat", "models", "quantize", "route", "serve", "run", "bench"):
        sub = next(p for path, p in _parsers(build_parser()) if path == f"orchestrator {command}")
        assert "examples:" in sub.format_help() and f"orchestrator {command}" in sub.epilog, command


def test_version_is_the_packages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"orchestrator {metadata.version('on-device-orchestrator')}"


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["route", "x", "--max-tokens", "2000000"], "--max-tokens 2000000"),  # was a pydantic traceback
        (["generate", "smollm2-135m", "hi", "--n-ctx", "10"], "--n-ctx 10"),  # was a pydantic traceback
        (["generate", "smollm2-135m", "hi", "--max-tokens", "0"], "--max-tokens 0"),
        (["generate", "smollm2-135m", "hi", "--top-p", "0"], "--top-p 0.0"),
        (["generate", "smollm2-135m", "hi", "--speculative", "fast"], "--speculative"),
        (["chat", "--temperature", "9"], "--temperature 9.0"),
        (["chat", "--n-ctx", "1"], "--n-ctx 1"),
        (["serve", "--max-active", "0"], "--max-active 0"),
        (["serve", "--host", "0.0.0.0"], "--host 0.0.0.0"),
        (["serve", "--cors-origin", "*"], "--cors-origin"),
        (["route", "x", "--cascade", "2"], "--cascade"),
        (["route", "x", "--remote", "http://127.0.0.1:9/v1"], "--remote-model"),
        (["quantize", "smollm2-135m", "x.gguf", "--type", "q9_9"], "--type"),
        (["generate", "smollm2-135m", "hi", "--n", "many"], "--n"),
        (["generate", "smollm2-135m", "hi", "--stop", ""], "--stop"),  # a check across the request's fields
        (["generate", "smollm2-135m"], "prompt"),
        (["bench", "--plot", "x.jpg", "engine"], "--plot"),
        (["route", "x", "--label", "Not A Label"], "--label"),
        (["route", "x", "--max-latency-s", "-1"], "--max-latency-s"),
        (["run", "vote", "2 + 2 =", "--samples", "0"], "--samples"),
        (["models", "tune", "smollm2-135m", "--reps", "0"], "--reps"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_flag_with_exit_status_2(capsys: pytest.CaptureFixture[str], argv: list[str], flag: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and flag in err, err
    assert "Traceback" not in err and "ValidationError" not in err


def test_bars_draw_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, plain = Tty(), io.StringIO()
    for stream in (tty, plain):
        bar = ProgressBar("download m", stream=stream)
        bar(0, 4 << 20)
        bar(4 << 20, 4 << 20)
        bar(0, 1 << 20)  # the next file starts a new bar
        bar(1 << 20, 1 << 20)
        bar.close()
        with CountBar("quantizing", unit="tensor", stream=stream) as tensors:
            for i in range(1, 273):
                tensors(i, 272, f"blk.{i}.weight")
    text = tty.getvalue()
    assert "4.00M/4.00M" in text and "1.00M/1.00M" in text and "100%" in text  # bytes, with tqdm's rate and time left
    assert "272/272" in text and "tensor/s" in text
    assert plain.getvalue() == ""


# ----------------------------------------------------------------------------------- chat


class Typed:
    """Stands in for ``input``: returns the lines given, then Ctrl-D (EOFError)."""

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)
        self.prompts = 0

    def __call__(self, prompt: str) -> str:
        self.prompts += 1
        if not self.lines:
            raise EOFError
        line = self.lines.pop(0)
        if line == "^C":
            raise KeyboardInterrupt
        return line


class CtrlCAfter(io.StringIO):
    """An output that gets Ctrl-C (a real SIGINT) after ``words`` pieces of the first answer."""

    def __init__(self, words: int) -> None:
        super().__init__()
        self.words = words
        self.armed = True

    def write(self, text: str) -> int:
        n = super().write(text)
        if self.armed and text.strip() and not text.startswith(("Type", "\n", "(")):
            self.words -= 1
            if self.words == 0:
                self.armed = False
                signal.raise_signal(signal.SIGINT)  # Python raises KeyboardInterrupt here, in the main thread
        return n


@pytest.fixture
def python_ctrl_c():
    """Python's own SIGINT handler for the test: a process started in the background by a shell
    without job control inherits SIGINT ignored, and Python then never installs it."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_the_answer_through_the_backend_and_returns_to_the_prompt(python_ctrl_c) -> None:
    long = " ".join(f"w{i}" for i in range(200))
    fake = ScriptedBackend([long, "second answer"], delay=0.005)
    out = CtrlCAfter(words=3)
    typed = Typed("tell me everything", "and then?", "/bye")
    with SyncOrchestrator({"fake": fake}) as orch:
        loop = ChatLoop(orch, ChatSettings(max_tokens=500), read=typed, out=out)
        assert loop.run() == 0
    text = out.getvalue()
    first, rest = text.split("(stopped)\n", 1)
    assert "w2" in first and "w199" not in text  # the backend stopped at its next word
    assert "second answer" in rest and typed.prompts == 3  # back at the prompt, then /bye
    assert [m.role for m in loop.history] == ["user", "assistant", "user", "assistant"]
    partial = loop.history[1].content
    assert partial.split() == [f"w{i}" for i in range(len(partial.split()))] and 3 <= len(partial.split()) < 200
    assert fake.requests[1].messages[1].content == partial  # the next turn sees what was shown


def test_commands_and_ctrl_c_at_the_prompt() -> None:
    fake = ScriptedBackend(lambda request: f"turn {len(request.messages)}")
    out = io.StringIO()
    typed = Typed("hello", "^C", "/timings", "again", "/clear", "fresh", "/nope", "/help")  # then Ctrl-D
    with SyncOrchestrator({"fake": fake}) as orch:
        loop = ChatLoop(orch, ChatSettings(system="Be brief."), read=typed, out=out)
        assert loop.run() == 0
    text = out.getvalue()
    assert [len(r.messages) for r in fake.requests] == [2, 4, 2]  # system + history; /clear forgot two turns
    assert "turn 2\n" in text and "Ctrl-D or /bye leaves" in text
    timing_lines = [line for line in text.splitlines() if line.startswith("[")]
    assert len(timing_lines) == 2 and all("tokens in" in line and "first token" in line for line in timing_lines)
    assert "unknown command /nope" in text and "/timings" in text.split("unknown command")[1]


@pytest.mark.model
def test_a_two_turn_chat_with_the_real_model_keeps_the_history(smollm2_path) -> None:
    out = io.StringIO()
    typed = Typed("My name is Ada. Remember it.", "What is my name?")
    with SyncOrchestrator({"smollm2-135m": smollm2_path}) as orch:
        loop = ChatLoop(orch, ChatSettings(max_tokens=16, sampling=SamplingParams(temperature=0.0)), read=typed, out=out)
        assert loop.run() == 0
    assert [m.role for m in loop.history] == ["user", "assistant", "user", "assistant"]
    assert all(m.content.strip() for m in loop.history)
    second = loop.last
    assert second is not None and second.finish_reason in ("stop", "length") and second.tokens > 0
    # the second prompt starts with the whole first exchange: the engine reused its cached tokens
    assert second.timings.prefill_reused_tokens >= 20
    assert "Ada" in loop.history[3].content  # only the history carries the name into the second turn
    assert out.getvalue().count("\n") >= 3

"""Benchmark plots from a fake final JSON line (no benchmark runs), and the CLI's progress displays."""

from __future__ import annotations

import io
import json
import runpy
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestrator.cli.plots import (
    JsonLineTap,
    find_ratios,
    last_json_object,
    plot_ratios,
    pop_plot_flag,
    run_capturing_json,
)
from orchestrator.cli import main
from orchestrator.errors import ConfigError
from orchestrator.cli.progress import Activity, ProgressBar, StepProgress

pytestmark = pytest.mark.timeout(60)

# The shape bench/engine.py prints last (numbers made up).
ENGINE_LINE = {
    "bench": "engine", "reps": 3, "tokens": 64, "threads": 2,
    "results": {
        "smollm2-135m": {
            "tok_s": {"engine_1": 101.0, "engine_4": 171.0, "llama": 81.0},
            "ratio_vs_single": {"1": 1.0, "4": 1.69},
            "single_vs_llama": 1.25,
        },
        "gemma3-270m": {
            "tok_s": {"engine_1": 40.0, "engine_4": 91.0, "llama": 38.0},
            "ratio_vs_single": {"1": 1.0, "4": 2.27},
            "single_vs_llama": 0.95,
        },
    },
    "meets_target": True,
}  # fmt: skip


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_find_ratios_keeps_only_ratio_paths_and_shortens_labels() -> None:
    assert find_ratios(ENGINE_LINE) == {
        "smollm2-135m / ratio_vs_single / 1": 1.0,
        "smollm2-135m / ratio_vs_single / 4": 1.69,
        "smollm2-135m / single_vs_llama": 1.25,
        "gemma3-270m / ratio_vs_single / 1": 1.0,
        "gemma3-270m / ratio_vs_single / 4": 2.27,
        "gemma3-270m / single_vs_llama": 0.95,
    }  # tok/s, settings and booleans are not ratios
    assert find_ratios({"speedup": 1.4, "ratio_x": None, "other_ratio": float("nan")}) == {"speedup": 1.4}


def test_plot_ratios_writes_a_png_with_one_bar_per_ratio(tmp_path: Path) -> None:
    from matplotlib.image import imread

    small = plot_ratios({"bench": "x", "speedup": 1.5}, tmp_path / "one.png")
    big = plot_ratios(ENGINE_LINE, tmp_path / "engine.png")
    assert big == tmp_path / "engine.png" and big.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the figure is 1.2 + 0.32 inches per bar tall, at 100 dpi
    assert imread(small).shape[:2] == (152, 800)
    assert imread(big).shape[:2] == (312, 800)


def test_bad_plot_requests_fail_typed_and_early(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no ratios"):
        plot_ratios({"bench": "x", "tok_s": 12.0}, tmp_path / "a.png")
    with pytest.raises(ConfigError, match=r"\.png"):
        plot_ratios(ENGINE_LINE, tmp_path / "a.jpg")
    with pytest.raises(ConfigError, match="does not exist"):
        pop_plot_flag(["--plot", str(tmp_path / "missing" / "a.png")])
    with pytest.raises(ConfigError, match="needs a file"):
        pop_plot_flag(["--reps", "1", "--plot"])
    assert pop_plot_flag(["--reps", "1", f"--plot={tmp_path / 'b.png'}", "--quick"]) == (tmp_path / "b.png", ["--reps", "1", "--quick"])


def test_the_tap_passes_output_through_and_keeps_the_last_json_line() -> None:
    out = io.StringIO()
    tap = JsonLineTap(out)
    tap.write("table row 1\n{not json}\n")
    tap.write('{"bench": "a", "ratio": ')  # one line in three writes
    tap.write("2.0}\nafter\n")
    tap.write('{"bench": "b"}')  # no newline at the end
    tap.close_line()
    assert out.getvalue() == 'table row 1\n{not json}\n{"bench": "a", "ratio": 2.0}\nafter\n{"bench": "b"}'
    assert tap.last == {"bench": "b"}
    assert last_json_object('x\n{"a": 1}\n[1, 2]\nend') == {"a": 1}
    with pytest.raises(ConfigError, match="no JSON line"):
        run_capturing_json(lambda: print("only a table"), out=io.StringIO())


def test_bench_plot_flag_plots_the_scripts_last_json_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen_argv: list[list[str]] = []

    def fake_bench(path: str, run_name: str) -> None:  # stands in for running bench/engine.py
        seen_argv.append(list(sys.argv))
        print("model  seqs  tok/s")
        print(json.dumps(ENGINE_LINE))

    monkeypatch.setattr(runpy, "run_path", fake_bench)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    png = tmp_path / "engine.png"
    assert main(["bench", "engine", "--reps", "1", "--plot", str(png)]) == 0
    assert seen_argv[0][1:] == ["--reps", "1"]  # --plot is the CLI's, not the bench's
    captured = capsys.readouterr()
    assert json.loads(captured.out.splitlines()[-1]) == ENGINE_LINE  # still printed for people and machines
    assert f"plot: {png}" in captured.err and png.read_bytes()[:4] == b"\x89PNG"

    assert main(["bench", "--plot", str(tmp_path / "x.txt"), "engine"]) == 1  # a bad name fails before the run
    assert len(seen_argv) == 1 and "must end in .png" in capsys.readouterr().err


def test_step_progress_shows_counts_and_an_estimate_on_a_tty_only() -> None:
    tty = _Tty()
    with StepProgress("bench x", total=4, stream=tty) as steps:
        steps.advance("first")
        steps.note("rep 1: 100 tok/s")
        steps.advance("second", steps=2)
        assert steps.line().startswith("bench x 3/4 0:00 left ~0:00  second")
    text = tty.getvalue()
    assert "\rbench x 1/4" in text and "rep 1: 100 tok/s\n" in text and text.endswith("\n")

    plain = io.StringIO()
    with StepProgress("bench x", total=2, stream=plain) as steps:
        steps.advance()
        steps.note("a measurement")
    assert plain.getvalue() == "a measurement\n"  # piped: only the notes


def test_activity_ticks_while_blocking_work_runs_then_stops_its_thread() -> None:
    tty = _Tty()
    with Activity("quantizing m", stream=tty) as activity:
        time.sleep(0.35)  # stands in for a native call that releases the GIL
    frames = tty.getvalue().count("\rquantizing m ")
    assert frames >= 2 and tty.getvalue().endswith(f"quantizing m: done in {activity.elapsed_s:.1f} s\n")
    assert not any(t.name == "orchestrator-activity" for t in threading.enumerate())

    with pytest.raises(RuntimeError), Activity("failing", stream=tty):
        raise RuntimeError("boom")
    assert "failing: failed in" in tty.getvalue()

    plain = io.StringIO()
    with Activity("quiet", stream=plain):
        pass
    assert plain.getvalue() == ""


def test_progress_bar_draws_on_a_tty_only() -> None:
    tty, plain = _Tty(), io.StringIO()
    for stream in (tty, plain):
        bar = ProgressBar("pull m", stream=stream, width=10)
        bar(5 << 20, 10 << 20)
        bar(10 << 20, 10 << 20)
        bar.close()
    assert "[#####-----]  50.0%" in tty.getvalue() and "[##########] 100.0%" in tty.getvalue()
    assert plain.getvalue() == ""

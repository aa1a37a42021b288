"""Benchmark plots from small final JSON lines (no benchmark runs), and the benches' step progress.

The engine, routing and speculative benches have their own charts; each is drawn from a sample
of its bench's JSON shape and counted (lines, bars). Any other bench gets the ratio bars."""

from __future__ import annotations

import io
import json
import runpy
import sys
from pathlib import Path

import pytest

from orchestrator.cli.plots import (
    JsonLineTap,
    find_ratios,
    last_json_object,
    plot_bench,
    plot_ratios,
    pop_plot_flag,
    run_capturing_json,
)
from orchestrator.cli import main
from orchestrator.errors import ConfigError
from orchestrator.cli.progress import StepProgress

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

    assert main(["bench", "--plot", str(tmp_path / "x.txt"), "engine"]) == 2  # a bad name fails before the run
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


# bench/engine.py's current shape: results[model][weights] (numbers made up)
ENGINE_WEIGHTS_LINE = {
    "bench": "engine", "reps": 1, "tokens": 16, "threads": 2, "weights": ["shipped", "auto"],
    "results": {
        model: {
            label: {"path": f"/m/{model}-{label}.gguf", "why": "test",
                    "tok_s": {"engine_1": base, "engine_4": base * 2.1, "engine_16": base * 2.9, "llama": base * 0.8},
                    "ratio_vs_single": {"1": 1.0, "4": 2.1, "16": 2.9}, "single_vs_llama": 1.25}
            for label, base in (("shipped", 100.0), ("auto:q8_0", 120.0))
        }
        for model in ("smollm2-135m", "gemma3-270m")
    },
}  # fmt: skip

_SHARES = ("0.00", "0.25", "0.50", "0.75", "1.00")
_TIERS = ("gemma3-270m", "stand-in 95%")
ROUTING_LINE = {
    "bench": "routing", "tasks": 44, "small_model": "smollm2-135m",
    "accuracy": {"small": 0.4, "gemma3-270m": 0.5, "stand-in 95%": 0.95},
    "routers": {
        name: {"auroc": 0.7, "tiers": {t: {"curve": {sh: 0.4 + k * float(sh) / 4 for sh in _SHARES}, "apgr": 0.6} for t in _TIERS}}
        for k, name in enumerate(("cascade", "learned-post", "prompt-length", "random"))
    },
    "oracle_apgr": {t: 0.8 for t in _TIERS},
    "oracle_curve": {t: {sh: min(0.95, 0.4 + 2 * float(sh)) for sh in _SHARES} for t in _TIERS},
}  # fmt: skip

SPECULATIVE_LINE = {
    "bench": "speculative", "reps": 1, "tokens": 64, "threads": 2,
    "results": {
        target: {
            task: {"kind": kind, "tok_s": {m: 100.0 for m in modes},
                   "x_plain": {"plain": 1.0, **{m: 1.0 + 0.1 * i for i, m in enumerate(modes[1:])}},
                   "prompt_lookup_bound": 2.0, "extra_row_cost": 0.1, "greedy_identical": True, "speculation": {}}
            for task, kind in (("code-edit", "grounded"), ("extraction", "grounded"), ("story", "open"))
        }
        for target, modes in (("smollm2-135m-q4_1", ["plain", "prompt-lookup", "auto", "llama-pld"]),
                              ("smollm2-135m-f32", ["plain", "prompt-lookup", "draft", "auto", "llama-pld"]))
    },
}  # fmt: skip


def _drawn_lines(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def _bars(ax) -> int:
    return sum(len(container.patches) for container in ax.containers)


def test_engine_plot_is_throughput_against_concurrency_one_line_per_model_and_weights(tmp_path: Path) -> None:
    from orchestrator.cli.bench_plots import engine_figure

    (ax,) = engine_figure(ENGINE_WEIGHTS_LINE).axes
    assert sorted(_drawn_lines(ax)) == sorted(f"{m} [{w}]" for m in ("smollm2-135m", "gemma3-270m") for w in ("shipped", "auto:q8_0"))
    first = ax.get_lines()[0]
    assert list(first.get_xdata()) == [1, 4, 16] and list(first.get_ydata()) == [100.0, 210.0, 290.0]
    assert len(ax.collections) == 4  # the Llama baseline, one cross per line
    (ax,) = engine_figure(ENGINE_LINE).axes  # an older line, without the weights level
    assert sorted(_drawn_lines(ax)) == ["gemma3-270m", "smollm2-135m"]
    png = plot_bench(ENGINE_WEIGHTS_LINE, tmp_path / "engine.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000


def test_routing_plot_is_quality_against_escalation_with_oracle_and_random(tmp_path: Path) -> None:
    from orchestrator.cli.bench_plots import routing_figure

    fig = routing_figure(ROUTING_LINE)
    assert len(fig.axes) == len(_TIERS)  # one panel per larger tier
    for ax in fig.axes:
        assert _drawn_lines(ax) == ["cascade", "learned-post", "prompt-length", "random", "oracle (reads the key)"]
        oracle = ax.get_lines()[-1]
        assert list(oracle.get_xdata()) == [0.0, 0.25, 0.5, 0.75, 1.0] and oracle.get_ydata()[-1] == 0.95
    older = {k: v for k, v in ROUTING_LINE.items() if k != "oracle_curve"}
    older["routers"] = {k: v for k, v in ROUTING_LINE["routers"].items() if k != "random"}
    assert _drawn_lines(routing_figure(older).axes[0]) == ["cascade", "learned-post", "prompt-length", "random (expected)"]
    assert plot_bench(ROUTING_LINE, tmp_path / "routing.png").stat().st_size > 5_000


def test_speculative_plot_is_speedup_per_task_and_mode_as_grouped_bars(tmp_path: Path) -> None:
    from orchestrator.cli.bench_plots import speculative_figure

    q4, f32 = speculative_figure(SPECULATIVE_LINE).axes
    assert _bars(q4) == 3 * 3 and _bars(f32) == 3 * 4  # tasks x modes other than plain
    assert [c.get_label() for c in f32.containers] == ["prompt-lookup", "draft", "auto", "llama-pld"]
    assert [t.get_text().split("\n")[0] for t in q4.get_xticklabels()] == ["code-edit", "extraction", "story"]
    assert plot_bench(SPECULATIVE_LINE, tmp_path / "speculative.png").stat().st_size > 5_000


def test_other_benches_get_the_ratio_bars_and_empty_results_fail_typed(tmp_path: Path) -> None:
    from matplotlib.image import imread

    png = plot_bench({"bench": "parallel", "speedup": 1.5, "sot_vs_sequential": 1.2}, tmp_path / "p.png")
    assert imread(png).shape[:2] == (184, 800)  # plot_ratios: 1.2 + 0.32 inches per bar, at 100 dpi
    with pytest.raises(ConfigError, match="no results"):
        plot_bench({"bench": "engine", "results": {}}, tmp_path / "e.png")
    with pytest.raises(ConfigError, match="no routers"):
        plot_bench({"bench": "routing"}, tmp_path / "r.png")

"""The charts of three benchmarks, drawn from their final JSON lines (``orchestrator bench NAME --plot``).

* ``engine_figure``: aggregate tokens/s against concurrent sequences, one line per model and
  weights file (``bench/engine.py``'s ``results[model][weights]["tok_s"]["engine_N"]``); the
  high-level ``Llama`` single-sequence baseline is a cross at width 1 in the line's colour.
* ``routing_figure``: quality (share of right answers) against the share of tasks escalated, one
  panel per larger tier, one line per router (``results["routers"][name]["tiers"][tier]["curve"]``),
  with the oracle that reads the answer key (``oracle_curve``; older JSON lines lack it) and the
  random router (the seeded ``random`` router's curve, else the expected straight line).
* ``speculative_figure``: speedup over plain decoding per task, bars grouped by task with one
  bar per mode, one panel per target (``results[target][task]["x_plain"][mode]``).

Each builder returns a matplotlib ``Figure`` (tests count its lines and bars); ``BENCH_FIGURES``
maps a bench's name to its builder. matplotlib is imported only here, when drawing.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import ConfigError

__all__ = ["BENCH_FIGURES", "engine_figure", "routing_figure", "speculative_figure"]


def _figure(width: float, height: float, panels: int = 1) -> tuple[Any, list[Any]]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'on-device-orchestrator[plots]'") from None
    fig = Figure(figsize=(width * panels, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    return fig, list(axes)


def _results(data: dict[str, Any]) -> dict[str, Any]:
    results = data.get("results")
    if not isinstance(results, dict) or not results:
        raise ConfigError(f"the {data.get('bench', 'benchmark')} JSON line has no results to plot")
    return results


def _engine_series(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``"model [weights]" -> tok_s`` (an older line without the weights level: ``"model" -> tok_s``)."""
    series = {}
    for model, entry in results.items():
        if "tok_s" in entry:
            series[model] = entry["tok_s"]
        else:
            series.update({f"{model} [{label}]": r["tok_s"] for label, r in entry.items() if isinstance(r, dict) and "tok_s" in r})
    return series


def engine_figure(data: dict[str, Any]) -> Any:
    series = _engine_series(_results(data))
    fig, (ax,) = _figure(7.5, 4.5)
    widths: set[int] = set()
    for label, tok_s in series.items():
        points = sorted((int(k.removeprefix("engine_")), v) for k, v in tok_s.items() if k.startswith("engine_"))
        widths.update(w for w, _ in points)
        (line,) = ax.plot([w for w, _ in points], [v for _, v in points], marker="o", label=label)
        if "llama" in tok_s:
            ax.scatter([1], [tok_s["llama"]], marker="x", s=60, color=line.get_color(), zorder=3)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(widths), [str(w) for w in sorted(widths)])
    ax.set_xlabel("concurrent sequences")
    ax.set_ylabel("aggregate tokens/s")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(title="model [weights]; x: high-level Llama, 1 sequence", fontsize=8, title_fontsize=8)
    ax.set_title(f"bench engine: throughput against concurrency ({data.get('tokens', '?')} tokens, "
                 f"{data.get('threads', '?')} threads)")
    return fig


def _curve(curve: dict[str, float]) -> tuple[list[float], list[float]]:
    points = sorted((float(share), float(q)) for share, q in curve.items())
    return [s for s, _ in points], [q for _, q in points]


def routing_figure(data: dict[str, Any]) -> Any:
    routers: dict[str, Any] = data.get("routers") or {}
    if not routers:
        raise ConfigError("the routing JSON line has no routers to plot")
    tiers = list(next(iter(routers.values()))["tiers"])
    accuracy, oracle = data.get("accuracy", {}), data.get("oracle_curve", {})
    fig, axes = _figure(5.5, 4.5, panels=len(tiers))
    for ax, tier in zip(axes, tiers, strict=True):
        for name, entry in routers.items():
            shares, quality = _curve(entry["tiers"][tier]["curve"])
            if name == "random":
                ax.plot(shares, quality, color="grey", linestyle=":", linewidth=1.5, label="random")
            else:
                ax.plot(shares, quality, marker=".", linewidth=1.2, label=name)
        if "random" not in routers and "small" in accuracy and tier in accuracy:
            ax.plot([0, 1], [accuracy["small"], accuracy[tier]], color="grey", linestyle=":", label="random (expected)")
        if tier in oracle:
            shares, quality = _curve(oracle[tier])
            ax.plot(shares, quality, color="black", linestyle="--", linewidth=1.5, label="oracle (reads the key)")
        ax.set_title(f"larger tier: {tier}", fontsize=10)
        ax.set_xlabel("share of tasks escalated")
        ax.set_ylabel("share of right answers")
        ax.grid(True, alpha=0.3)
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"bench routing: quality against escalation ({data.get('tasks', '?')} tasks, small tier {data.get('small_model', '?')})")
    return fig


def speculative_figure(data: dict[str, Any]) -> Any:
    results = _results(data)
    fig, axes = _figure(6.5, 4.5, panels=len(results))
    every_mode = list(dict.fromkeys(m for tasks in results.values() for t in tasks.values() for m in t["x_plain"] if m != "plain"))
    colour = {m: f"C{i}" for i, m in enumerate(every_mode)}  # a mode keeps its colour in every panel
    for ax, (target, tasks) in zip(axes, results.items(), strict=True):
        names = list(tasks)
        modes = [m for m in next(iter(tasks.values()))["x_plain"] if m != "plain"]
        width = 0.8 / max(len(modes), 1)
        tallest = 1.0
        for i, mode in enumerate(modes):
            offsets = [j + (i - (len(modes) - 1) / 2) * width for j in range(len(names))]
            heights = [tasks[t]["x_plain"].get(mode, 0.0) for t in names]
            ax.bar(offsets, heights, width, label=mode, color=colour[mode])
            tallest = max(tallest, *heights)
        ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
        ax.set_ylim(0, tallest * 1.25)  # room for the legend above the bars
        ax.set_xticks(range(len(names)), [f"{t}\n({tasks[t].get('kind', '')})" for t in names], fontsize=8)
        ax.set_ylabel("speedup over plain decoding (x)")
        ax.set_title(target, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", ncols=len(modes))
    fig.suptitle(f"bench speculative: speedup per task and mode ({data.get('tokens', '?')} tokens, median of {data.get('reps', '?')})")
    return fig


BENCH_FIGURES = {"engine": engine_figure, "routing": routing_figure, "speculative": speculative_figure}

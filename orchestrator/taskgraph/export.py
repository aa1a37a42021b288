"""Pictures of task graphs and their runs, for people: Mermaid text, SVG and PNG.

``to_mermaid`` draws a graph's structure (``TaskGraph.structure()`` or a stored
``RunRecord.structure``) as a Mermaid flowchart, with each node's status and duration when
the run's node records are given. ``run_svg`` draws a run by hand (no dependency): a small
layered drawing of the DAG above a timeline with one bar per node key, map instances
(``name[i]``), subgraph nodes (``parent/child``) and loop iterations (``name#i``) included.
``run_png`` draws the same timeline with matplotlib (the ``plots`` extra).

Node names are letters, digits and ``_-.``, but everything else drawn here (statuses,
errors, a structure read from a file) is treated as untrusted text and escaped.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

import networkx as nx

from orchestrator.errors import ConfigError
from orchestrator.taskgraph.store import NodeRecord, RunRecord, RunStore

__all__ = ["run_png", "run_svg", "show_run", "to_mermaid"]

# status -> (fill, stroke); a status the store does not know is drawn as "not run".
_COLOURS = {
    "done": ("#d5efd5", "#2e7d32"),
    "failed": ("#f9d3d3", "#c62828"),
    "skipped": ("#ececec", "#8a8a8a"),
    "cancelled": ("#fde3c5", "#e65100"),
    "started": ("#d6e5fb", "#1565c0"),
    "not run": ("#ffffff", "#9e9e9e"),
}
_SHAPES = {  # Mermaid node shapes per kind: (open, close) around the quoted label
    "function": ("[", "]"),
    "generate": ("([", "])"),
    "map": ("[/", "/]"),
    "subgraph": ("[[", "]]"),
    "loop": ("{{", "}}"),
}
_MERMAID_SAFE = frozenset(string.ascii_letters + string.digits + " _-.,:/()[]+=*!?@'")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_REASON_CHARS = 80


# -- Mermaid -----------------------------------------------------------------


def to_mermaid(structure: dict[str, Any], nodes: Mapping[str, NodeRecord] | None = None) -> str:
    """Mermaid ``flowchart TD`` text of a graph structure. With ``nodes`` (a run's records by
    key), each node shows its status and duration (a map: its instances and how many finished)
    and is coloured by status. Node ids are generated (``n0``, ``n1``...), so no node name can
    clash with Mermaid's syntax or keywords; labels are quoted and escaped."""
    names, edges = _structure(structure)
    kinds = {str(n["name"]): str(n.get("kind")) for n in structure.get("nodes", []) if isinstance(n, dict) and "name" in n}
    ids = {name: f"n{i}" for i, name in enumerate(names)}
    lines = ["flowchart TD"]
    classes: dict[str, list[str]] = {}
    for name in names:
        kind = kinds.get(name, "function")
        label = [name]
        if nodes is not None:
            record = nodes.get(name)
            status = record.status if record is not None else "not run"
            label += _details(name, kind, record, nodes)
            classes.setdefault(_status_class(status), []).append(ids[name])
        opening, closing = _SHAPES.get(kind, _SHAPES["function"])
        lines.append(f'    {ids[name]}{opening}"{"<br/>".join(_mermaid_text(part) for part in label)}"{closing}')
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in edges]
    if nodes is not None:
        for status, (fill, stroke) in _COLOURS.items():
            dash = ",stroke-dasharray:4 3" if status in ("skipped", "not run") else ""
            lines.append(f"    classDef {_status_class(status)} fill:{fill},stroke:{stroke},color:#1a1a1a{dash}")
        lines += [f"    class {','.join(members)} {cls}" for cls, members in classes.items()]
    return "\n".join(lines) + "\n"


def _details(name: str, kind: str, record: NodeRecord | None, nodes: Mapping[str, NodeRecord]) -> list[str]:
    """The label lines under a node's name: status and duration, then what is inside it."""
    status = record.status if record is not None else "not run"
    duration = _record_duration(record)
    lines = [status if duration is None else f"{status}, {_duration(duration)}"]
    if kind == "map":
        instances = [r for k, r in nodes.items() if re.fullmatch(re.escape(name) + r"\[\d+\]", k)]
        total = (record.info.get("instances") if record is not None else None) or len(instances)
        if total:
            lines.append(f"{_count(total, 'instance')}, {sum(r.status == 'done' for r in instances)} done")
    elif kind == "loop":
        iterations = sum(1 for k in nodes if re.fullmatch(re.escape(name) + r"#\d+", k))
        if iterations:
            lines.append(_count(iterations, "iteration"))
    elif kind == "subgraph":
        inner = [r for k, r in nodes.items() if k.startswith(name + "/")]
        if inner:
            lines.append(f"{_count(len(inner), 'inner node')}, {sum(r.status == 'done' for r in inner)} done")
    if record is not None and record.error and record.status != "done":
        first = next((line for line in record.error.splitlines() if line.strip()), record.error)
        lines.append(_shorten(first.strip(), _REASON_CHARS))
    return lines


def _mermaid_text(text: str) -> str:
    """Text safe inside a double-quoted Mermaid label: anything but plain characters becomes
    a ``#code;`` entity (quotes, ``<``, ``#``, ``%``, backticks, non-ASCII)."""
    return "".join(c if c in _MERMAID_SAFE else f"#{ord(c)};" for c in _clean(text))


def _status_class(status: str) -> str:
    return "st_" + (status if status in _COLOURS and status != "not run" else "notrun")


# -- SVG ---------------------------------------------------------------------

_W, _M = 960, 16  # default picture width, margin
_BOX_W, _BOX_H, _COL_GAP, _ROW_GAP = 150, 34, 44, 12
_LABEL_W, _ROW_H, _BAR_H, _TAIL_W = 250, 18, 12, 110
_FONT = 'font-family="sans-serif"'


def run_svg(record: RunRecord, nodes: Mapping[str, NodeRecord]) -> str:
    """An SVG picture of a run: the DAG in layers (coloured by status) above a timeline with
    one bar per node key (x = seconds from the run start, colour = status)."""
    names, edges = _structure(record.structure)
    layers = _layers(names, edges)
    dag_w = len(layers) * (_BOX_W + _COL_GAP) - _COL_GAP
    width = max(_W, dag_w + 2 * _M)
    marker = f"arrow-{_xml(record.run_id)}"
    out = [
        (f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
         '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>'),
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="{_M}" y="24" font-size="15" font-weight="bold">{_xml(f"run {record.run_id} of {record.graph}: {record.status}")}</text>',
    ]
    # The DAG: one column per topological generation, boxes joined by arrows.
    top = 44
    pos: dict[str, tuple[float, float]] = {}
    for col, layer in enumerate(layers):
        for row, name in enumerate(layer):
            pos[name] = (_M + col * (_BOX_W + _COL_GAP), top + row * (_BOX_H + _ROW_GAP))
    for a, b in edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        out.append(f'<line x1="{xa + _BOX_W:.1f}" y1="{ya + _BOX_H / 2:.1f}" x2="{xb:.1f}" y2="{yb + _BOX_H / 2:.1f}" '
                   f'stroke="#555" stroke-width="1.2" marker-end="url(#{marker})"/>')
    for name, (x, y) in pos.items():
        node = nodes.get(name)
        status = node.status if node is not None else "not run"
        fill, stroke = _colours(status)
        duration = _record_duration(node)
        state = status if duration is None else f"{status}, {_duration(duration)}"
        out.append(f'<g class="node" data-name="{_xml(name)}"><title>{_xml(_tooltip(name, node))}</title>'
                   f'<rect x="{x:.1f}" y="{y:.1f}" width="{_BOX_W}" height="{_BOX_H}" rx="6" fill="{fill}" stroke="{stroke}"/>'
                   f'<text x="{x + 8:.1f}" y="{y + 14:.1f}">{_xml(_shorten(name, 22))}</text>'
                   f'<text x="{x + 8:.1f}" y="{y + 28:.1f}" font-size="10" fill="#444">{_xml(_shorten(state, 26))}</text></g>')
    # The timeline: an axis of seconds from the run start, then one row per node key.
    bars, span = _timeline(record, nodes)
    y0 = top + max((len(layer) for layer in layers), default=0) * (_BOX_H + _ROW_GAP) + 30
    x0, bar_w = _M + _LABEL_W, width - 2 * _M - _LABEL_W - _TAIL_W
    rows_h = len(bars) * _ROW_H
    out.append(f'<text x="{_M}" y="{y0:.1f}" font-weight="bold">timeline, from the run start</text>')
    step = _tick_step(span)
    for i in range(int(span / step) + 1):
        x = x0 + i * step / span * bar_w
        out.append(f'<line x1="{x:.1f}" y1="{y0 + 10:.1f}" x2="{x:.1f}" y2="{y0 + 16 + rows_h:.1f}" stroke="#e0e0e0"/>'
                   f'<text x="{x:.1f}" y="{y0 + 28 + rows_h:.1f}" font-size="10" text-anchor="middle">{_xml(_tick(i * step, span))}</text>')
    for i, bar in enumerate(bars):
        y = y0 + 16 + i * _ROW_H
        x, w = x0 + bar.start / span * bar_w, max(2.0, (bar.end - bar.start) / span * bar_w)
        stroke = _colours(bar.status)[1]
        opacity = ' fill-opacity="0.45"' if bar.open else ""
        out.append(f'<g class="row"><title>{_xml(_tooltip(bar.key, bar.record))}</title>'
                   f'<text x="{x0 - 6}" y="{y + _BAR_H - 2:.1f}" text-anchor="end">{_xml(_shorten(bar.key, 36))}</text>'
                   f'<rect class="bar" data-key="{_xml(bar.key)}" data-status="{_xml(bar.status)}" x="{x:.2f}" y="{y:.1f}" width="{w:.2f}" '
                   f'height="{_BAR_H}" fill="{stroke}"{opacity}/>'
                   f'<text x="{x + w + 4:.1f}" y="{y + _BAR_H - 2:.1f}" font-size="10" fill="#333">{_xml(bar.label)}</text></g>')
    # A legend of the status colours.
    y = y0 + 48 + rows_h
    for i, (status, (fill, stroke)) in enumerate(_COLOURS.items()):
        x = _M + i * 110
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{fill}" stroke="{stroke}"/>'
                   f'<text x="{x + 16}" y="{y}" font-size="11">{_xml(status)}</text>')
    height = int(y + _M)
    head = f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" {_FONT} font-size="12">'
    return "\n".join([head, *out, "</svg>"]) + "\n"


def _layers(names: list[str], edges: list[tuple[str, str]]) -> list[list[str]]:
    """Topological generations, each ordered by where its inputs sit (fewer crossing arrows)."""
    dag = nx.DiGraph()
    dag.add_nodes_from(names)
    dag.add_edges_from(edges)
    try:
        generations = [sorted(g, key=names.index) for g in nx.topological_generations(dag)]
    except nx.NetworkXUnfeasible:  # not a DAG (a hand-edited structure): draw it in one column
        return [names]
    row: dict[str, float] = {}
    layers = []
    for generation in generations:
        centre = {n: sum(row[p] for p in dag.predecessors(n)) / max(1, dag.in_degree(n)) for n in generation}
        layer = sorted(generation, key=centre.__getitem__)
        row.update((n, i) for i, n in enumerate(layer))
        layers.append(layer)
    return layers


def _tooltip(key: str, record: NodeRecord | None) -> str:
    if record is None:
        return f"{key}: not run"
    duration = _record_duration(record)
    text = f"{key}: {record.status}" + (f" in {_duration(duration)}" if duration is not None else "")
    if record.attempts > 1:
        text += f" after {record.attempts} attempts"
    return text + (f"\n{record.error}" if record.error else "")


def _xml(text: str) -> str:
    """Text safe in XML content and in double-quoted attributes."""
    return escape(_clean(text), {'"': "&quot;"})


# -- PNG ---------------------------------------------------------------------


def run_png(record: RunRecord, nodes: Mapping[str, NodeRecord], path: str | Path) -> Path:
    """Draws the run's timeline to a PNG file with matplotlib; returns the path. Raises
    ``ConfigError`` when matplotlib is not installed."""
    try:  # the Agg canvas directly: no pyplot, no change to the application's backend
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError(f"drawing a PNG needs matplotlib, which is not installed ({exc}); "
                          "install the 'plots' extra: pip install 'on-device-orchestrator[plots]'") from exc
    bars, span = _timeline(record, nodes)
    fig = Figure(figsize=(10, 1.4 + 0.28 * max(1, len(bars))))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, bar in enumerate(bars):
        colour = _colours(bar.status)[1]
        ax.barh(i, max(bar.end - bar.start, span / 500), left=bar.start, height=0.6, color=colour, alpha=0.45 if bar.open else 1.0)
        ax.text(bar.end + span / 100, i, _plain(bar.label), va="center", fontsize=8)
    ax.set_yticks(range(len(bars)), [_plain(b.key) for b in bars], fontsize=8)
    ax.set_ylim(max(1, len(bars)) - 0.5, -0.5)
    ax.set_xlim(0, span * 1.15)
    ax.set_xlabel("seconds from the run start")
    ax.set_title(_plain(f"run {record.run_id} of {record.graph}: {record.status}"), fontsize=10)
    if not bars:
        ax.text(0.5, 0.5, "no node has run", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png", dpi=100)
    return path


def _plain(text: str) -> str:
    """Text matplotlib draws as it is (a ``$`` would start mathtext)."""
    return _clean(text).replace("$", r"\$")


# -- the CLI's entry ---------------------------------------------------------


def show_run(store: RunStore, run_id: str, fmt: Literal["mermaid", "svg", "png"], out: Path | None = None) -> str:
    """A stored run as ``fmt``. Mermaid and SVG return the text (also written to ``out`` when
    given); PNG is written to ``out`` (required) and its path is returned."""
    if fmt not in ("mermaid", "svg", "png"):
        raise ConfigError(f"graph format must be 'mermaid', 'svg' or 'png', not {fmt!r}")
    if fmt == "png" and out is None:
        raise ConfigError("a PNG needs a file to be written to (out)")
    record, nodes = store.run(run_id), store.nodes(run_id)
    if fmt == "png":
        return str(run_png(record, nodes, out))  # type: ignore[arg-type]
    text = to_mermaid(record.structure, nodes) if fmt == "mermaid" else run_svg(record, nodes)
    if out is not None:
        Path(out).write_text(text, encoding="utf-8")
    return text


# -- shared ------------------------------------------------------------------


@dataclass(frozen=True)
class _Bar:
    key: str
    status: str
    start: float  # seconds from the run start
    end: float
    open: bool  # started and never finished (the run stopped): drawn to the end of the picture
    label: str
    record: NodeRecord


def _timeline(record: RunRecord, nodes: Mapping[str, NodeRecord]) -> tuple[list[_Bar], float]:
    """One bar per node key, in the order they started, and the span of the run in seconds.
    A node that never started (skipped) is a sliver at the time it was recorded."""
    times = [t for r in nodes.values() for t in (r.started, r.finished) if t is not None]
    t0 = min([record.created, *times])
    span = max(max([t0, *times]) - t0, 1e-3)
    bars = []
    for r in nodes.values():
        start = next((t for t in (r.started, r.finished) if t is not None), t0 + span) - t0
        end = r.finished - t0 if r.finished is not None else span
        duration = _record_duration(r)
        label = r.status if duration is None else _duration(duration) if r.status == "done" else f"{_duration(duration)}, {r.status}"
        bars.append(_Bar(r.key, r.status, start, max(start, end), r.started is not None and r.finished is None, label, r))
    bars.sort(key=lambda b: (b.start, _natural(b.key)))
    return bars, span


def _structure(structure: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """Node names (in order) and edges of a structure; an edge's unknown end becomes a node."""
    names = [str(n["name"]) for n in structure.get("nodes", []) if isinstance(n, dict) and "name" in n]
    edges = [(str(e[0]), str(e[1])) for e in structure.get("edges", []) if isinstance(e, list | tuple) and len(e) == 2]
    for edge in edges:
        names += [n for n in edge if n not in names]
    return names, edges


def _record_duration(record: NodeRecord | None) -> float | None:
    if record is None or record.started is None or record.finished is None:
        return None
    return max(0.0, record.finished - record.started)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def _tick(t: float, span: float) -> str:
    return f"{round(t * 1000, 3):g} ms" if span < 1 else f"{round(t, 3):g} s"


def _tick_step(span: float) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about six ticks over ``span``."""
    raw = span / 6
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude)


def _colours(status: str) -> tuple[str, str]:
    return _COLOURS.get(status, _COLOURS["not run"])


def _clean(text: str) -> str:
    """Drops characters no XML document may hold (control characters, lone surrogates)."""
    return _NOT_XML.sub("\ufffd", str(text))


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _natural(key: str) -> list[Any]:
    """``write[2]`` before ``write[10]``: digit runs compare as numbers."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]

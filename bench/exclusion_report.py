"""Writes the exclusion benchmark's results: JSON, a markdown table and plots."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

MAIN_COLUMNS = ["MRR@1", "MRR@3", "MRR@10", "nDCG@1", "nDCG@3", "nDCG@10", "AP@1", "AP@3", "AP@10", "violation@10"]


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def markdown_table(rows: list[dict], columns: list[str] = MAIN_COLUMNS, subset: str = "all") -> str:
    """One line per method: ``rows`` hold 'method', 'seconds' and a metrics dict per subset."""
    head = "| method | " + " | ".join(columns) + " | time (s) |"
    lines = [head, "|" + "---|" * (len(columns) + 2)]
    for row in rows:
        metrics = row[subset]
        cells = [_fmt(metrics.get(c)) for c in columns]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + f" | {_fmt(row.get('seconds'))} |")
    return "\n".join(lines)


def simple_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def write_json(path: Path, payload: dict) -> None:
    def default(o):
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(type(o))

    path.write_text(json.dumps(payload, indent=1, default=default, allow_nan=True))


def bar_plot(rows: list[dict], metric: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["method"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.2))
    y = np.arange(len(names))
    for off, subset, color in ((-0.2, "all", "#4477aa"), (0.2, "hard", "#ee6677")):
        vals = [r[subset].get(metric, float("nan")) for r in rows]
        ax.barh(y + off, vals, height=0.4, color=color, label=f"{subset} pairs")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scatter_plot(ours: np.ndarray, dense: np.ndarray, hard: np.ndarray, path: Path,
                 ours_name: str, dense_name: str, metric: str = "AP@10") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    jitter = lambda v: v + rng.uniform(-0.01, 0.01, size=v.shape)  # noqa: E731  (many ties at 1.0)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(jitter(dense[~hard]), jitter(ours[~hard]), s=4, alpha=0.3, color="#4477aa", label="all pairs")
    ax.scatter(jitter(dense[hard]), jitter(ours[hard]), s=9, alpha=0.8, color="#ee6677", label="hard pairs")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    better, worse = int((ours > dense).sum()), int((ours < dense).sum())
    ax.set_xlabel(f"{dense_name} {metric}")
    ax.set_ylabel(f"{ours_name} {metric}")
    ax.set_title(f"per query {metric}: ours better on {better}, worse on {worse}")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

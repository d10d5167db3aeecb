"""Speed report: markdown table + latency-vs-N plot from ``bench/results/speed_*.json``.

    python bench/speed_report.py report [--results bench/results] [--ours numba]

``report`` reads every ``speed_*.json`` (one run per file) and writes ``speed_report.md`` and
``speed_latency.png`` next to them. A run file holds ``{"n_docs", ..., "engines": [row, ...]}``
(or ``"results"``, or ``{"engines": {name: row}}``); a row names its engine (``engine``/``name``)
and carries any of the metric keys in ``COLUMNS``. Ratios are engine / ours (latency: > 1 means
slower than our store; QPS: < 1 means fewer queries per second), our store's row comes last.
The runs themselves come from ``bench/speed.py`` (every engine on one collection per run).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# (key, header, format); the first matching key of a row is used
COLUMNS = [
    ("build_s", "build s", "{:.1f}"),
    ("index_bytes", "index MB", "{:.1f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p95_ms", "p95 ms", "{:.2f}"),
    ("qps_batch", "batch QPS", "{:.0f}"),
    ("recall@10", "recall@10", "{:.3f}"),
    ("p50_ms_excl", "p50 ms (excl.)", "{:.2f}"),
    ("qps_batch_excl", "batch QPS (excl.)", "{:.0f}"),
    ("recall@10_excl", "recall@10 (excl.)", "{:.3f}"),
]
RATIOS = [("p50_ms", "p50 / ours"), ("qps_batch", "QPS / ours"), ("p50_ms_excl", "p50 excl. / ours")]


def load_runs(results: Path) -> list[dict]:
    """All rows of the synthetic ``speed_*.json`` runs (latency against N; the real-vector runs,
    ``--collection coco``, have their own table), each with ``engine``, ``n_docs`` and ``source``."""
    rows = []
    for path in sorted(results.glob("speed_*.json")):
        run = json.loads(path.read_text())
        if isinstance(run, dict) and run.get("collection", "synthetic") != "synthetic":
            continue
        engines = run.get("engines", run.get("results", run)) if isinstance(run, dict) else run
        if isinstance(engines, dict):
            engines = [dict(v, engine=k) for k, v in engines.items() if isinstance(v, dict)]
        for row in engines:
            if not isinstance(row, dict):
                continue
            row = dict(row)
            row["engine"] = str(row.get("engine", row.get("name", "?")))
            row["n_docs"] = int(row.get("n_docs", run.get("n_docs", 0) if isinstance(run, dict) else 0))
            row["source"] = path.name
            rows.append(row)
    return rows


def _is_ours(engine: str, ours: str) -> bool:
    return engine == ours or engine.startswith(ours + "-") or engine.startswith(ours + ":")


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "–"
    if key == "index_bytes":
        value = value / 1e6
    return fmt.format(value)


def markdown(rows: list[dict], ours: str) -> str:
    lines = ["# Speed benchmark", ""]
    for n_docs in sorted({r["n_docs"] for r in rows}):
        group = [r for r in rows if r["n_docs"] == n_docs]
        base = next((r for r in group if _is_ours(r["engine"], ours)), None)
        group.sort(key=lambda r: (_is_ours(r["engine"], ours), r["engine"]))
        cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in group)]
        ratios = [c for c in RATIOS if base is not None and base.get(c[0])]
        lines += [f"## N = {n_docs:,} documents", ""]
        header = ["engine"] + [c[1] for c in cols] + [c[1] for c in ratios]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in group:
            cells = [f"**{r['engine']}**" if r is base else r["engine"]]
            cells += [_cell(r, key, fmt) for key, fmt in ((c[0], c[2]) for c in cols)]
            for key, _ in ratios:
                value = r.get(key)
                cells.append("–" if value is None else f"{value / base[key]:.2f}×")
            lines.append("| " + " | ".join(cells) + " |")
        sources = sorted({r["source"] for r in group})
        lines += ["", f"Source: {', '.join(sources)}.", ""]
    if not any(_is_ours(r["engine"], ours) for r in rows):
        lines.append(f"(No row for our store '{ours}' yet: ratios left out.)")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], out: Path, ours: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in ((axes[0], "p50_ms", "single query, no exclusion"),
                           (axes[1], "p50_ms_excl", "single query, with exclusion")):  # fmt: skip
        for engine in sorted({r["engine"] for r in rows}):
            pts = sorted((r["n_docs"], r[key]) for r in rows if r["engine"] == engine and r.get(key))
            if pts:
                style = {}
                if engine == ours:
                    style = dict(lw=2.5, color="black")
                elif _is_ours(engine, ours):  # our other modes: thin and dashed, told apart by marker
                    style = dict(lw=1.2, color="dimgray", ls="--", marker="s" if "exhaustive" in engine else "^")
                ax.plot(*zip(*pts), **{"marker": "o", **style}, label=engine)
        ax.set(xscale="log", yscale="log", xlabel="documents (N)", ylabel="p50 latency (ms)",
               title=title)  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report")
    rep.add_argument("--results", type=Path, default=RESULTS)
    rep.add_argument("--ours", default="numba")
    args = parser.parse_args(argv)
    rows = load_runs(args.results)
    if not rows:
        sys.exit(f"no speed_*.json in {args.results}")
    (args.results / "speed_report.md").write_text(markdown(rows, args.ours))
    plot(rows, args.results / "speed_latency.png", args.ours)
    print(markdown(rows, args.ours))


if __name__ == "__main__":
    main()

"""The benchmark's sparse sections, grids, ablations and output (called by bench/exclusion.py)."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from bench import exclusion_data as data
from bench import exclusion_report as report
from sparse_engine.errors import SparseEngineError

# Defaults this benchmark supports (see the K/t/threshold grids in the results).
PAPER_K, PAPER_T = 100, 0.5
VETO_THRESHOLD, VETO_DIM_SHARE = 0.0, 0.0


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def load_sparse(name: str):
    """A sparse encoder, or the one-line reason it is not available here."""
    from sparse_engine.encoders.registry import create_encoder

    try:
        return create_encoder(name), ""
    except (SparseEngineError, ImportError, OSError) as exc:
        return None, f"{name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def run_sparse_methods(bench, enc, label: str, pooling: str, main: bool, notes: list[str]):
    """One encoder's exclusion methods. ``main``: our SR (all strategies + best combination)."""
    from bench.exclusion_sparse import SparseBench

    t0 = time.perf_counter()
    sb = SparseBench(enc, bench.coll, bench.queries, pooling=pooling)
    notes.append(f"{label}: documents encoded in {time.perf_counter() - t0:.0f}s; {sb.stats()}")
    planner = _have("sparse_engine.planner") and _have("sparse_engine.traverse")
    if planner:
        paper = bench.add(f"{label} paper D1\\D2 (planner, K={PAPER_K}, t={PAPER_T})",
                          lambda: sb.via_planner(strategy="paper", top_k_docs=PAPER_K, coverage=PAPER_T))
    else:
        paper = bench.add(f"{label} D1\\D2 (K={PAPER_K}, t={PAPER_T})",
                          lambda: sb.d1_minus_d2(top_k_docs=PAPER_K, coverage=PAPER_T),
                          note="matrix form: planner.py not available when run")
    if not main:
        return sb, {"paper": paper}
    rows = {"paper": paper}
    rows["a_only"] = bench.add(f"{label} A-only", sb.a_only)
    rows["subtract"] = bench.add(f"{label} subtract e(A)-e(B)", sb.subtract)
    if planner:
        rows["veto"] = bench.add(f"{label} document veto (planner)",
                                 lambda: sb.via_planner(strategy="veto", veto_threshold=VETO_THRESHOLD))
        rows["paper+veto"] = bench.add(f"{label} paper+veto (planner)",
                                       lambda: sb.via_planner(strategy="paper+veto", top_k_docs=PAPER_K,
                                                              coverage=PAPER_T, veto_threshold=VETO_THRESHOLD))
    rows["veto_m"] = bench.add(f"{label} document veto (> {VETO_THRESHOLD} on any dim of e(B))",
                               lambda: sb.veto(threshold=VETO_THRESHOLD, dim_share=VETO_DIM_SHARE))
    rows["veto+subtract"] = bench.add(f"{label} veto + subtract (best combination)",
                                      lambda: sb.veto(threshold=VETO_THRESHOLD, dim_share=VETO_DIM_SHARE,
                                                      subtract=1.0))
    return sb, rows


def grid_rows(bench, sb, label: str) -> list[dict]:
    """The planner's K and t grid (D1\\D2) and the veto threshold / dim-share grid, AP@10 and violation."""
    out = []
    for k_docs in (10, 50, 100, 300, 1000):
        for t in (0.3, 0.5, 0.7, 0.9):
            r = bench.add(f"{label} D1\\D2 K={k_docs} t={t}", lambda: sb.d1_minus_d2(top_k_docs=k_docs, coverage=t),
                          record=False)
            out.append(_grid_row("paper", {"K": k_docs, "t": t}, r))
    scale = sb.scale
    for thr_imp in (0, 8, 32, 64):
        for share in (0.0, 0.3, 0.6):
            r = bench.add(f"{label} veto impact>{thr_imp} share={share}",
                          lambda: sb.veto(threshold=thr_imp * scale, dim_share=share), record=False)
            out.append(_grid_row("veto", {"threshold": round(thr_imp * scale, 5), "impact": thr_imp,
                                          "dim_share": share}, r))
    return out


def _grid_row(strategy: str, params: dict, r: dict) -> dict:
    return {"strategy": strategy, **params, "AP@10 all": r["all"]["AP@10"], "AP@10 hard": r["hard"]["AP@10"],
            "violation@10 all": r["all"]["violation@10"], "violation@10 hard": r["hard"]["violation@10"]}


def write_outputs(out: Path, bench, extras: dict, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in bench.rows]
    payload = {"command": command, "n_queries": len(bench.queries), "n_hard": int(bench.hard.sum()),
               "methods": rows, **extras}
    report.write_json(out / "exclusion_results.json", payload)
    plots = []
    if bench.hard.any():
        report.bar_plot(rows, "AP@10", out / "exclusion_ap10.png", "AP@10 per method")
        report.bar_plot(rows, "violation@10", out / "exclusion_violation10.png", "violation@10 per method")
        plots = ["exclusion_ap10.png", "exclusion_violation10.png"]
        ours, dense = extras.get("scatter_ours"), extras.get("scatter_dense")
        if ours and dense and ours in bench.per_query and dense in bench.per_query:
            report.scatter_plot(bench.per_query[ours]["AP@10"], bench.per_query[dense]["AP@10"], bench.hard,
                                out / "exclusion_scatter.png", ours, dense)
            plots.append("exclusion_scatter.png")
    md = [f"# Exclusion benchmark (COCO val2017, {len(bench.queries)} queries, {int(bench.hard.sum())} hard)",
          "", f"Reproduce: `{command}`", "",
          "AP@k: average precision over the top k, normalised by the relevant documents retrieved in the "
          "top k (the seed paper's convention; reproduces its dense reference numbers).", "",
          "## All queries", "", report.markdown_table(rows, subset="all")]
    if bench.hard.any():
        md += ["", "## Hard subset (P(B|A) >= 0.3)", "", report.markdown_table(rows, subset="hard")]
    for key, title in (("lucene_agreement", "Numba store vs Lucene"), ("grid", "K / t / veto grid (SR)"),
                       ("classic", "Classic retrieval in caption space"), ("ablation", "SR ablation"),
                       ("defaults", "Planner defaults supported by this benchmark")):
        val = extras.get(key)
        if not val:
            continue
        md += ["", f"## {title}", ""]
        if isinstance(val, list) and val and isinstance(val[0], dict):
            md.append(report.simple_table(val, list(dict.fromkeys(k for r in val for k in r))))
        elif isinstance(val, dict):
            md += [f"- {k}: {v}" for k, v in val.items()]
        else:
            md.append(str(val))
    if extras.get("notes"):
        md += ["", "## Notes", ""] + [f"- {n}" for n in extras["notes"]]
    md += ["", "Plots: " + ", ".join(plots)] if plots else []
    (out / "exclusion_results.md").write_text("\n".join(md) + "\n")
    print(f"wrote {out / 'exclusion_results.md'} and exclusion_results.json" + (f", {', '.join(plots)}" if plots else ""))


def query_set(args, coll) -> list:
    if args.queries:
        queries = data.load_query_file(args.queries, coll)
        print(f"{len(queries)} queries from {args.queries}")
        return queries
    queries = data.label_pair_queries(coll)
    n, n_hard = data.check_counts(queries)
    print(f"{n} label-pair queries over {len(coll.doc_ids)} images, {n_hard} hard (P(B|A) >= 0.3)")
    return queries


def classic_rows(args, coll, dense_enc) -> list[dict]:
    from bench.exclusion_classic import dense_classic, sparse_classic

    rows = [{"model": f"dense {args.dense}", **dense_classic(dense_enc, coll)}]
    enc, why = load_sparse(args.sr)
    if enc is not None:
        rows.append({"model": f"SR {args.sr}", **sparse_classic(enc, coll)})
    return [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def lucene_agreement(bench, sb, notes: list[str]) -> dict:
    """Placeholder until the store exists: filled in by the Lucene section."""
    if not (_have("sparse_engine.store") and _have("sparse_engine.planner")):
        notes.append("Numba-vs-Lucene agreement not run: store/planner not available")
        return {}
    from bench.exclusion_lucene import compare_backends

    return compare_backends(bench, sb)


def ablation_rows(bench, models_dir: str, notes: list[str]) -> list[dict]:
    """SR variants (dims 500/1000/1500/2000, with/without SPINE masks): one row per trained model dir."""
    from bench.exclusion_sparse import SparseBench

    root = Path(models_dir)
    dirs = sorted(p for p in root.iterdir() if (p / "config.json").exists()) if root.is_dir() else []
    if not dirs:
        notes.append(f"SR ablation not run: no trained model folders (config.json) under {models_dir}")
        return []
    rows = []
    for d in dirs:
        enc, why = load_sparse(str(d))
        if enc is None:
            notes.append(f"ablation model skipped: {why}")
            continue
        sb = SparseBench(enc, bench.coll, bench.queries)
        r = bench.add(f"SR {d.name} veto", lambda: sb.veto(threshold=VETO_THRESHOLD, dim_share=VETO_DIM_SHARE),
                      record=False)
        rows.append({"model": d.name, "dim": enc.dim, "doc nnz": round(sb.stats()["doc_nnz_mean"], 1),
                     **_grid_row("veto", {}, r)})
    return rows


def pick_defaults(grid: list[dict]) -> dict:
    """Best grid point per strategy by AP@10 on all queries, hard AP@10 breaking ties."""
    out = {}
    for strategy in sorted({g["strategy"] for g in grid}):
        best = max((g for g in grid if g["strategy"] == strategy), key=lambda g: (g["AP@10 all"], g["AP@10 hard"]))
        out[strategy] = {k: v for k, v in best.items() if k != "strategy"}
    return out

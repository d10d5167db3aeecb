"""How the exclusion benchmark chooses the planner's defaults: margins, the pick, the split check."""
from types import SimpleNamespace

import numpy as np
import pytest

from bench.exclusion_data import ExclusionQuery
from bench.exclusion_metrics import summarize
from bench.exclusion_suite import _split_check, min_margin, pick_defaults


def test_min_margin_is_relative_and_counts_violation_as_lower_is_better():
    ref_all, ref_hard = {"AP@10": 0.8, "violation@10": 0.2}, {"AP@10": 0.5, "violation@10": 0.4}
    got_all, got_hard = {"AP@10": 0.88, "violation@10": 0.1}, {"AP@10": 0.55, "violation@10": 0.42}
    # margins: +10 %, +50 % (half the violations), +10 %, -5 % (more violations on the hard pairs)
    assert min_margin(got_all, got_hard, ref_all, ref_hard) == pytest.approx(-0.05)
    assert min_margin(ref_all, ref_hard, ref_all, ref_hard) == 0.0


def _grid_point(weight, margin, ap_all, ap_hard):
    return {"strategy": "veto+subtract", "word_weight": weight, "AP@10 all": ap_all, "AP@10 hard": ap_hard,
            "min margin": margin, "_per_query": {}}


def test_pick_defaults_takes_the_largest_smallest_margin_then_ap():
    grid = [{"strategy": "subtract", "alpha": a, "AP@10 all": 0.9, "AP@10 hard": h} for a, h in ((0.5, 0.7), (1.0, 0.8))]
    words = [_grid_point(0.6, 0.02, 0.99, 0.99),  # best AP, but loses more narrowly on some metric
             _grid_point(0.8, 0.03, 0.95, 0.85), _grid_point(0.9, 0.03, 0.96, 0.86)]
    picked = pick_defaults(grid, words)
    assert picked["subtract"]["alpha"] == 1.0
    chosen = picked["veto+subtract with caption words"]
    assert chosen["word_weight"] == 0.9 and "_per_query" not in chosen and "strategy" not in chosen
    assert "veto+subtract with caption words" not in pick_defaults(grid)


def test_split_check_chooses_on_one_half_and_scores_on_the_other():
    # A's category index: "a" 0 (even), "b" 1 (odd); queries 0, 1 even, queries 2, 3 odd; 1 and 3 hard
    bench = SimpleNamespace(coll=SimpleNamespace(categories=["a", "b"]),
                            queries=[ExclusionQuery([c], ["x"], set()) for c in "aabb"],
                            hard=np.array([False, True, False, True]))
    ref = {"_per_query": {"AP@10": np.array([0.5, 0.5, 0.5, 0.5])}}
    even_wins = {"_per_query": {"AP@10": np.array([0.9, 0.9, 0.55, 0.55])}}  # +80 % on even, +10 % on odd
    odd_wins = {"_per_query": {"AP@10": np.array([0.6, 0.6, 0.8, 0.8])}}  # +20 % on even, +60 % on odd
    rows = [even_wins, odd_wins]
    _split_check(bench, rows, ref, summarize)
    assert even_wins["chosen on even A"] and even_wins["margin on the other half (chosen on even A)"] == pytest.approx(0.1)
    assert odd_wins["chosen on odd A"] and odd_wins["margin on the other half (chosen on odd A)"] == pytest.approx(0.2)
    assert "chosen on odd A" not in even_wins and "chosen on even A" not in odd_wins

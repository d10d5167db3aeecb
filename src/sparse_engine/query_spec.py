"""The compiled form of a query: what the planner produces and the traversal consumes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class QuerySpec:
    """Weighted dims to score, plus a document veto.

    ``weights`` may be negative: exclusion by dimension subtraction. A document whose
    dequantised weight on any ``veto_dims`` exceeds ``veto_threshold`` is dropped.
    ``must_dims`` (from ``+term``): a document must be non-zero on at least one of them.
    """

    dims: np.ndarray  # int32
    weights: np.ndarray  # float32
    veto_dims: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    veto_threshold: float = float("inf")
    must_dims: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    text: str = ""

    def __post_init__(self) -> None:
        self.dims = np.ascontiguousarray(self.dims, dtype=np.int32)
        self.weights = np.ascontiguousarray(self.weights, dtype=np.float32)
        self.veto_dims = np.ascontiguousarray(self.veto_dims, dtype=np.int32)
        self.must_dims = np.ascontiguousarray(self.must_dims, dtype=np.int32)
        if self.dims.shape != self.weights.shape:
            raise ValueError("dims and weights must have the same length")

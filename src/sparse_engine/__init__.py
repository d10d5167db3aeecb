"""sparse-engine: exclusion-aware image search over small interpretable sparse vectors."""

__version__ = "0.1.0"

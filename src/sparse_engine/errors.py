"""User-facing errors: each carries one line that names the problem."""


class SparseEngineError(Exception):
    """An error caused by the user's input or environment (bad query, missing index, ...).

    The CLI prints ``str(error)`` on one line and exits non-zero; no traceback.
    """


class MissingExtraError(SparseEngineError):
    """An optional dependency group is not installed."""

    def __init__(self, feature: str, extra: str, extra_command: str = ""):
        command = f'pip install "sparse-engine[{extra}]"'
        if extra_command:
            command += f" && {extra_command}"
        super().__init__(f"{feature} needs the '{extra}' extra: run {command}")
        self.extra = extra


def require_module(module: str, feature: str, extra: str, extra_command: str = ""):
    """Import an optional module or raise MissingExtraError naming the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingExtraError(feature, extra, extra_command) from exc

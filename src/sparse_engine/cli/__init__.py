"""The ``sparse-engine`` command line: a root click group, one module per command.

Heavy imports (numba, torch, models) happen inside the commands so ``--help`` stays instant.
Progress goes to stderr, results to stdout; user errors go through :func:`abort`.
"""
from __future__ import annotations

import importlib
import logging
import sys
from typing import NoReturn

import click

from ..errors import SparseEngineError

# command name -> module under sparse_engine.cli that defines `command`
COMMANDS = {
    "index": "index_cmd",
    "query": "query_cmd",
    "info": "info_cmd",
    "explain": "explain_cmd",
    "train": "train_cmd",
    "demo": "demo_cmd",
}


def abort(message: str) -> NoReturn:
    """Print one clear line on stderr and exit 1 (no traceback)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(name for name in COMMANDS if self._module(name) is not None)

    def get_command(self, ctx, name):
        module = self._module(name)
        return getattr(module, "command", None) if module is not None else None

    @staticmethod
    def _module(name):
        if name not in COMMANDS:
            return None
        try:
            return importlib.import_module(f"{__name__}.{COMMANDS[name]}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(COMMANDS[name]):
                return None  # command not built in this checkout
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SparseEngineError as exc:
            abort(str(exc))


@click.group(cls=LazyGroup)
@click.version_option(package_name="sparse-engine")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details on stderr.")
def main(verbose: bool) -> None:
    """Search image collections with exclusion queries such as "sports -basketball"."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")

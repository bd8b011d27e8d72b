"""Layer 1, the command line: `kizuna …`, one module per command group."""

from kizuna.cli.main import app, main

__all__ = ["app", "main"]

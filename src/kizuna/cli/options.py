"""What the writing commands outside `kizuna run/ingest/check/build` share: the same wait for the warehouse."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from kizuna.core.settings import Settings


@contextmanager
def waiting_for_warehouse(settings: Settings) -> Iterator[None]:
    """Wait for the warehouse as every writer does (docs/operations.md): the writer lock, then the file free of
    any reader, up to KIZUNA_WAREHOUSE_WAIT_SECONDS; the wait is announced on stderr naming the holder, and
    giving up is one error line, never a traceback."""
    from kizuna.core.locks import WarehouseBusyError, writing
    from kizuna.core.warehouse import WarehouseLockedError

    notice = logging.StreamHandler(sys.stderr)
    notice.setLevel(logging.WARNING)
    notice.setFormatter(logging.Formatter("warning: %(message)s"))
    logger = logging.getLogger("kizuna")
    logger.addHandler(notice)
    try:
        with writing(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds):
            logger.removeHandler(notice)
            yield
    except (WarehouseBusyError, WarehouseLockedError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    finally:
        logger.removeHandler(notice)

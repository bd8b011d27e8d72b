"""The page cache before a measured run: the same state every time, so cold and warm reads stop mixing.

Session 12 measured the same day-2 ingest at 178.6 s right after other runs had pushed its files out of the page
cache and at 100.4 s with them cached: a run's figures depended on what ran before it. Before each measured step
that reads files (`Step.reads`) the harness puts them in one of these states:

- ``warm`` (the default): every file under the step's inputs is read once, so it is in the page cache (when
  it fits in RAM) and the step measures its own work, not the disk. Needs no privilege.
- ``cold``: the whole page cache is dropped (``sync``, then ``1`` into /proc/sys/vm/drop_caches), so the step
  reads everything from disk, as a machine's first run after a reboot does. Needs root, and slows every other
  process on the machine for a while: for a machine of one's own.
- ``as-is``: nothing is done (the figures before this existed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

MODES = ("warm", "cold", "as-is")
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
_CHUNK = 1 << 20


class PageCacheError(RuntimeError):
    """The page cache could not be put in the state asked for (e.g. ``cold`` without root)."""


def files_under(paths: Iterable[Path]) -> list[Path]:
    """Every regular file at or under the given paths (missing paths are skipped), in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()))
    return found


def read_through(paths: Iterable[Path]) -> int:
    """Read every file under `paths` once, discarding the bytes; how many bytes were read."""
    total = 0
    buffer = bytearray(_CHUNK)
    for file in files_under(paths):
        try:
            with open(file, "rb", buffering=0) as f:
                while n := f.readinto(buffer):
                    total += n
        except OSError:  # a file removed meanwhile (a lock, a temporary file): nothing to warm
            continue
    return total


def drop(control: Path = DROP_CACHES) -> None:
    """Write dirty pages out, then drop the clean page cache (the whole machine's); PageCacheError if refused."""
    os.sync()
    try:
        control.write_text("1\n", encoding="ascii")
    except OSError as exc:
        raise PageCacheError(
            f"cannot drop the page cache ({control}: {exc.strerror or exc}): `--page-cache cold` needs root; "
            "use --page-cache warm"
        ) from exc


def prepare(mode: str, paths: Iterable[Path], *, control: Path = DROP_CACHES) -> dict[str, object]:
    """Put the page cache in `mode` for a step reading `paths`; what was done, for the step's figures."""
    if mode == "warm":
        return {"page_cache": "warm", "warmed_bytes": read_through(paths)}
    if mode == "cold":
        drop(control)
        return {"page_cache": "cold"}
    if mode == "as-is":
        return {"page_cache": "as-is"}
    raise ValueError(f"page cache mode {mode!r}: give one of {', '.join(MODES)}")

"""The one rule for files kizuna writes for people (reports, charts, exports, call lists): atomic, umask's mode.

Every such file is created with the mode any program gets from open(): 0666 less the process umask (0644 under
the usual umask 022, 0600 under 077), never tempfile's private 0600 for some files and 0644 for others. They hold
customer data: where other people share the machine, run kizuna with umask 077 (or 027 for a group).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PROC_STATUS = Path("/proc/self/status")


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (os.umask sets it to read it, which
    another thread could see), else set and restored at once."""
    try:
        for line in _PROC_STATUS.read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode of every file kizuna writes for people: 0666 less the umask."""
    return 0o666 & ~current_umask()


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error, give it the rule's mode and move
    it into place in one step, so a reader never sees half a file. On error the temporary file is removed and
    whatever was at `path` stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write a text file (UTF-8) atomically with the rule's mode."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: Path, data: bytes) -> None:
    """Write a binary file atomically with the rule's mode."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)

"""Template files stay inside templates/: a symbolic link that leads outside it is never followed."""

from __future__ import annotations

import os
from pathlib import Path


def is_outside(root: Path, path: Path) -> bool:
    """Whether ``path``, with every link on its way resolved, is outside ``root`` (itself resolved)."""
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(root))
    except ValueError:
        return True
    return False


def links_leaving(root: Path, folder: Path) -> list[str]:
    """Every link under ``folder`` (links not followed) that leads outside ``root``, as paths relative to root."""
    found: list[str] = []
    if folder.is_symlink():
        return [folder.name] if is_outside(root, folder) else []
    for directory, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(directory) / name
            if path.is_symlink() and is_outside(root, path):
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def outside_message(root: Path, relative: str) -> str:
    """One line saying a link was refused, naming the link (never what it points at: that may be a secret)."""
    return (
        f"{relative} is a link to a file outside {root.name}/: refused (templates may only use files inside "
        f"{root.name}/; copy the file in instead of linking to it)"
    )

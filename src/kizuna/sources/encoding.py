"""Text encodings of source files: UTF-8 (with or without BOM) or CP932 as Japanese Excel writes it."""

from __future__ import annotations

import codecs
from pathlib import Path

from kizuna.sources.errors import SourceError

_CHUNK = 1 << 20


def _first_bad_line(path: Path, encoding: str) -> tuple[int, int]:
    """Line number (1-based) and byte offset of the first byte that does not decode."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        return data.count(b"\n", 0, exc.start) + 1, exc.start
    return 0, -1


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as fh:
        try:
            while chunk := fh.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _first_nul_line(path: Path) -> int | None:
    """Line number (1-based) of the first NUL byte anywhere in the file, streamed; None if there is none."""
    lines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            at = chunk.find(b"\x00")
            if at >= 0:
                return lines + chunk.count(b"\n", 0, at) + 1
            lines += chunk.count(b"\n")
    return None


def detect_encoding(path: Path) -> str:
    """Return 'utf-8-sig', 'utf-8' or 'cp932'; raise SourceError naming the line if neither fits."""
    with path.open("rb") as fh:
        head = fh.read(_CHUNK)
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise SourceError(
            path.name,
            None,
            None,
            "is neither UTF-8 nor CP932 (Shift_JIS): it looks UTF-16 (Excel's 'Unicode text'); save it as 'CSV UTF-8'",
        )
    # NUL bytes never occur in a UTF-8 or CP932 text file (CP932 would "decode" UTF-16 into garbage), and DuckDB
    # and the csv module disagree about them: refused wherever they are, not only near the start.
    nul_line = _first_nul_line(path)
    if nul_line is not None:
        raise SourceError(
            path.name,
            None,
            None,
            f"is neither UTF-8 nor CP932 (Shift_JIS): line {nul_line} holds a NUL byte, as binary files do; "
            "save it as 'CSV UTF-8'",
        )
    if head.startswith(codecs.BOM_UTF8):
        if _decodes(path, "utf-8-sig"):  # a BOM promises UTF-8; the rest of the file must keep the promise
            return "utf-8-sig"
    elif _decodes(path, "utf-8"):
        return "utf-8"
    elif _decodes(path, "cp932"):
        return "cp932"
    line, offset = _first_bad_line(path, "utf-8")
    raise SourceError(
        path.name,
        row=None,
        column=None,
        message=(
            f"is neither UTF-8 nor CP932 (Shift_JIS): the first undecodable byte is on line {line} "
            f"(byte {offset}); save it as 'CSV UTF-8' or 'CSV (comma delimited)' from Excel"
        ),
    )


def to_utf8(path: Path, encoding: str, dest: Path) -> Path:
    """Write a UTF-8 copy of `path` at `dest` (streamed) and return it; UTF-8 input is returned as is."""
    if encoding == "utf-8":
        return path
    dest.parent.mkdir(parents=True, exist_ok=True)
    with path.open("r", encoding=encoding, newline="") as src, dest.open("w", encoding="utf-8", newline="") as out:
        while chunk := src.read(_CHUNK):
            out.write(chunk)
    return dest

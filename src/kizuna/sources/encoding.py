"""Text encodings of source files: UTF-8 (with or without BOM) or CP932 as Japanese Excel writes it."""

from __future__ import annotations

import codecs
import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from kizuna.core.errors import SourceError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileScan:
    """What one streamed pass over a file's bytes tells, so no later step reads the file again for it."""

    sha256: str
    has_nul: bool
    utf8: bool  # the whole file decodes as UTF-8 (a BOM is U+FEFF, itself UTF-8)
    lines: int  # line ends (LF), plus one for a last line without one


def scan_file(path: Path) -> FileScan:
    """The sha256, NUL bytes, UTF-8 validity and line count of a file in one pass (what detect_encoding, the
    unchanged-file skip and the spreadsheet row numbers need; each used to read the file once more)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8, has_nul, newlines, last = True, False, 0, b""
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            has_nul = has_nul or b"\x00" in chunk
            newlines += chunk.count(b"\n")
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
            last = chunk[-1:]
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    return FileScan(digest.hexdigest(), has_nul, utf8, newlines + (1 if last not in (b"", b"\n") else 0))


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


def _is_japanese(ch: str) -> bool:
    code = ord(ch)
    return (
        0x3000 <= code <= 0x30FF  # CJK punctuation, hiragana, katakana
        or 0x4E00 <= code <= 0x9FFF  # CJK ideographs
        or 0xFF01 <= code <= 0xFF9F  # full-width forms and half-width katakana
    )


# The scripts UTF-8's two-byte sequences reach, which is where half-width katakana pairs land.
_SCRIPTS = frozenset({"LATIN", "GREEK", "CYRILLIC", "ARMENIAN", "HEBREW", "ARABIC", "SYRIAC", "THAANA", "NKO"})


def _script(ch: str) -> str:
    """The script a letter belongs to, from its Unicode name ('LATIN', 'HEBREW', ...); '' when it has none
    of its own (µ is MICRO SIGN, a combining accent of NFD text belongs to its base letter)."""
    first = unicodedata.name(ch, "").split(" ")[0]
    return first if first in _SCRIPTS else ""


def _reads_as_text(text: str) -> bool:
    """Whether UTF-8-decoded text looks like text rather than CP932 read as UTF-8.

    Mojibake of half-width katakana gives C1 control characters, unassigned code points, words mixing
    scripts (a Latin ligature followed by a Hebrew point) or runs of accented Latin letters with no plain
    letter among them, which no Latin-script word is. A single accented letter stays ambiguous (ﾃｽ is ý).
    """
    word: list[str] = []
    for ch in [*text, " "]:
        category = unicodedata.category(ch)
        if (category == "Cc" and 0x80 <= ord(ch) <= 0x9F) or category == "Cn":
            return False  # C1 controls and unassigned code points are not in any text
        if category[0] in "LM":
            word.append(ch)
            continue
        if word:
            scripts = {_script(c) for c in word if not c.isascii()} - {""}
            if any(c.isascii() for c in word):
                scripts.add("LATIN")
            if len(scripts) > 1:
                return False
            if scripts == {"LATIN"} and not any(c.isascii() for c in word) and len(word) > 1:
                return False
            word = []
    return True


def _is_cp932_text(head: bytes) -> bool:
    """The file's start reads as Japanese in CP932 and not as text in UTF-8 (see detect_encoding)."""
    as_utf8 = head.decode("utf-8", errors="ignore")  # a chunk may end inside a character
    as_cp932 = head.decode("cp932", errors="ignore")
    if any(_is_japanese(ch) for ch in as_utf8) or not any(_is_japanese(ch) for ch in as_cp932):
        return False
    return not _reads_as_text(as_utf8)


def detect_encoding(path: Path, scan: FileScan | None = None) -> str:
    """Return 'utf-8-sig', 'utf-8' or 'cp932'; raise SourceError naming the line if neither fits.

    With the file's scan_file() the file is not read again (but for CP932, and to name a bad line)."""
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
    nul_line = _first_nul_line(path) if scan is None or scan.has_nul else None
    if nul_line is not None:
        raise SourceError(
            path.name,
            None,
            None,
            f"is neither UTF-8 nor CP932 (Shift_JIS): line {nul_line} holds a NUL byte, as binary files do; "
            "save it as 'CSV UTF-8'",
        )
    utf8 = scan.utf8 if scan is not None else None
    if head.startswith(codecs.BOM_UTF8):
        if (
            utf8 if utf8 is not None else _decodes(path, "utf-8-sig")
        ):  # a BOM promises UTF-8; the rest of the file must keep the promise
            return "utf-8-sig"
    elif utf8 if utf8 is not None else _decodes(path, "utf-8"):
        # Some CP932 files are valid UTF-8 too: half-width katakana are single bytes that can pair up as
        # UTF-8 sequences (ﾄｳﾖｳ is 'ĳ' and a Hebrew point). Prefer the reading that gives Japanese text.
        if not head.isascii() and _is_cp932_text(head) and _decodes(path, "cp932"):
            return "cp932"
        return "utf-8"
    elif _decodes(path, "cp932"):
        return "cp932"
    # Named in the reading that gets further: a CP932 file's first Japanese letter is already not UTF-8, and
    # the byte at fault is the one CP932 cannot read either.
    line, offset = _first_bad_line(path, "utf-8")
    reading = "UTF-8"
    cp932_line, cp932_offset = _first_bad_line(path, "cp932")
    if cp932_offset > offset:
        line, offset, reading = cp932_line, cp932_offset, "CP932"
    raise SourceError(
        path.name,
        row=None,
        column=None,
        message=(
            f"is neither UTF-8 nor CP932 (Shift_JIS): the first undecodable byte is on line {line} "
            f"(byte {offset}, read as {reading}); save it as 'CSV UTF-8' or 'CSV (comma delimited)' from Excel"
        ),
    )


def to_utf8(path: Path, encoding: str, dest: Path) -> Path:
    """Write a UTF-8 copy of `path` at `dest` (streamed) and return it; UTF-8 input, with or without a BOM, is
    returned as is (DuckDB's reader and csv_records.read_header skip the BOM)."""
    if encoding in ("utf-8", "utf-8-sig"):
        return path
    dest.parent.mkdir(parents=True, exist_ok=True)
    with path.open("r", encoding=encoding, newline="") as src, dest.open("w", encoding="utf-8", newline="") as out:
        while chunk := src.read(_CHUNK):
            out.write(chunk)
    return dest

"""The event store: append-only JSON-lines segment files, each batch fsynced before the webhook answers 2xx.

Layout of ``KIZUNA_EVENTS_DIR``::

    .writer.lock                          held (flock) by the one receiver writing here
    000000000001-20250101T000000Z.jsonl   one JSON object per line: {"received_at": ..., "event": {...}}
    000000000002-20250101T013000Z.jsonl   segments are numbered; only the highest one may still grow

A receiver never appends to a segment it did not create: every start, and every failed write, begins a
new segment. So a crash can leave an incomplete last line only at the end of a segment that will never
grow again, and the loader can tell it apart from a line still being written (see ``read_lines``).
Nothing here takes a lock the loader or the daily run waits for; the loader only reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_FILE = ".writer.lock"
_SEGMENT = re.compile(r"^(\d{12})-\d{8}T\d{6}Z\.jsonl$")


class StoreUnavailableError(RuntimeError):
    """The batch could not be made durable: the webhook must answer 5xx so SendGrid retries."""


class StoreLockedError(RuntimeError):
    """Another receiver already writes to this events directory."""


def segment_number(name: str) -> int | None:
    match = _SEGMENT.match(name)
    return int(match.group(1)) if match else None


def list_segments(directory: Path) -> list[Path]:
    """The segment files in write order (by number, never by clock)."""
    if not directory.is_dir():
        return []
    numbered = [(n, p) for p in directory.iterdir() if (n := segment_number(p.name)) is not None]
    return [p for _, p in sorted(numbered)]


def encode_batch(events: Sequence[Mapping[str, Any]], received_at: datetime) -> bytes:
    """One line per event. ASCII-only JSON, so any string SendGrid sent (even a lone surrogate) round-trips."""
    stamp = received_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return b"".join(
        json.dumps(
            {"received_at": stamp, "event": e}, ensure_ascii=True, separators=(",", ":"), allow_nan=False
        ).encode("ascii")
        + b"\n"
        for e in events
    )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EventStore:
    """The writing side, used by the webhook receiver. Thread-safe: appends are serialised."""

    def __init__(self, directory: Path, segment_max_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = directory
        self.segment_max_bytes = segment_max_bytes
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._segment: Path | None = None
        self._size = 0

    @property
    def segment(self) -> Path | None:
        """The segment being appended to, if any."""
        return self._segment

    def open(self) -> None:
        """Create the directory and become its only writer; StoreLockedError if another receiver is."""
        with self._lock:
            self._open_locked()

    def _open_locked(self) -> None:
        if self._lock_fd is not None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreUnavailableError(f"cannot open the event store {self.directory}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise StoreLockedError(
                f"another receiver writes to {self.directory}; run one receiver per KIZUNA_EVENTS_DIR"
            ) from exc
        self._lock_fd = fd

    def _new_segment(self) -> None:
        self._close_segment()
        numbers = [n for p in list_segments(self.directory) if (n := segment_number(p.name)) is not None]
        number = max(numbers, default=0) + 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = self.directory / f"{number:012d}-{stamp}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._segment = path
        self._size = 0
        _fsync_dir(self.directory)  # the new name itself must survive a power cut
        log.info("event store: new segment %s", path.name)

    def _close_segment(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._segment, self._size = None, None, 0

    def append(self, events: Sequence[Mapping[str, Any]], received_at: datetime | None = None) -> int:
        """Write a batch and fsync it; return the bytes written. Raises StoreUnavailableError (answer 5xx)."""
        data = encode_batch(events, received_at or datetime.now(UTC))
        if not data:
            return 0
        with self._lock:
            self._open_locked()
            try:
                if self._fd is None or (self._size and self._size + len(data) > self.segment_max_bytes):
                    self._new_segment()
                assert self._fd is not None
                self._write_all(self._fd, data)
                os.fsync(self._fd)
            except OSError as exc:
                self._abandon_segment()
                raise StoreUnavailableError(f"could not store {len(events)} events in {self.directory}: {exc}") from exc
            self._size += len(data)
            return len(data)

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def _abandon_segment(self) -> None:
        """After a failed write, cut the partial batch off if we can and never append to this segment again.

        If the cut fails too, the segment may end in part of a batch that was never acknowledged; the
        loader sets such a tail aside, because a later segment exists.
        """
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
                os.fsync(self._fd)
        self._close_segment()

    def close(self) -> None:
        with self._lock:
            self._close_segment()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None


@dataclass(frozen=True)
class SegmentRead:
    """Complete lines read from one segment."""

    data: bytes  # whole lines, each ending in b"\n"
    start: int  # byte offset of data[0] in the segment
    end: int  # offset just after the last complete line read
    tail: bytes  # an incomplete last line (bytes after the last newline), if reading reached the end


def read_lines(path: Path, offset: int, max_bytes: int) -> SegmentRead:
    """Whole lines from ``offset``, at most about ``max_bytes`` (always at least one line if there is one)."""
    with path.open("rb") as fh:
        fh.seek(offset)
        chunk = fh.read(max_bytes)
        at_eof = len(chunk) < max_bytes
        while not at_eof and b"\n" not in chunk:  # one line longer than max_bytes: read on to its end
            more = fh.read(max_bytes)
            at_eof = len(more) < max_bytes
            chunk += more
    cut = chunk.rfind(b"\n") + 1
    tail = chunk[cut:] if at_eof else b""
    return SegmentRead(chunk[:cut], offset, offset + cut, tail)


def decode_line(line: bytes) -> tuple[str, dict[str, Any]]:
    """(received_at, event) of one stored line; ValueError if it is not one."""
    record = json.loads(line)
    if not isinstance(record, dict) or not isinstance(record.get("event"), dict):
        raise ValueError("not an event record")
    return str(record.get("received_at", "")), record["event"]

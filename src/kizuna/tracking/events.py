"""SendGrid webhook events as ops.email_events rows: lines read after the cursor, checked, parsed or set aside."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kizuna.core.ops import CUSTOM_ARGS
from kizuna.email.consent import SUPPRESSING_EVENTS
from kizuna.tracking.store import decode_line, read_lines, segment_number

log = logging.getLogger(__name__)

Reject = tuple[str, int, str, str]  # (segment, offset, reason, line) of ops.email_event_rejects
Salvaged = tuple[str, str, str, datetime]  # (email, reason, event id, seen at) of an opt-out among the rejects


@dataclass
class Chunk:
    """Rows read from one stretch of one segment, and where the cursor goes once they are committed.

    ``salvaged``: suppressing events among the rejects, whose addresses are suppressed all the same.
    """

    rows: list[tuple[Any, ...]]
    rejects: list[Reject]
    segment: str
    offset: int
    salvaged: list[Salvaged] = field(default_factory=list)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape: DuckDB strings must be valid UTF-8
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


# Epoch seconds kizuna accepts: 1970 up to the end of year 9999 (what a timestamp column can hold).
TIMESTAMP_RANGE = (0, 253_402_300_799)
BIGINT_RANGE = (-(2**63), 2**63 - 1)


def _int(event: dict[str, Any], key: str, bounds: tuple[int, int] = BIGINT_RANGE) -> int | None:
    """The event's integer field ``key`` (None when absent or null); ValueError naming the field otherwise.

    SendGrid sends integers; numeric text and whole floats are read as the number they spell. Anything else,
    or a number outside ``bounds``, is not guessed at: the event goes to the rejects table with the reason.
    """
    value = event.get(key)
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else ""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        text.isascii() and text.lstrip("-").isdigit() and len(text) <= 30
    ):
        number = int(value)
    shown = json.dumps(value, ensure_ascii=True, default=str)[:60]
    if number is None:
        raise ValueError(f"{key} {shown} is not a whole number")
    low, high = bounds
    if not low <= number <= high:
        raise ValueError(f"{key} {shown} is out of range ({low} to {high})")
    return number


def _utc(epoch: int | None) -> datetime | None:
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        return None


def event_row(event: dict[str, Any], received_at: str, segment: str, offset: int) -> tuple[Any, ...]:
    """One ops.email_events row (without loaded_at) from one SendGrid event; ValueError if it has no type."""
    kind = event.get("event")
    if not isinstance(kind, str) or not kind:
        raise ValueError("event has no 'event' type")
    payload = json.dumps(event, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    # SendGrid always sends sg_event_id; should one be missing, the payload itself identifies the event.
    event_id = _text(event.get("sg_event_id")) or "kz-" + hashlib.sha256(payload.encode()).hexdigest()[:32]
    timestamp = _int(event, "timestamp", TIMESTAMP_RANGE)
    machine_open = event.get("sg_machine_open")
    categories = event.get("category")
    received = _received(received_at)
    return (
        event_id,
        _text(event.get("sg_message_id")),
        kind,
        _text(event.get("email")),
        timestamp,
        _utc(timestamp),
        _text(event.get("url")),
        *(_text(event.get(name)) for name in CUSTOM_ARGS),
        (machine_open is True or machine_open == "true") if kind == "open" else None,
        _text(event.get("type")) if kind == "bounce" else None,
        _text(event.get("reason")),
        _text(event.get("status")),
        _int(event, "asm_group_id", (0, BIGINT_RANGE[1])),
        _text(event.get("useragent")),
        None if categories is None else json.dumps(categories if isinstance(categories, list) else [categories]),
        payload,
        received,
        segment,
        offset,
    )


def next_chunk(segments: list[Path], cursor: tuple[str, int], max_bytes: int) -> Chunk | None:
    """The next lines after the cursor; None when everything complete has been read.

    An incomplete last line of the newest segment may still be being written (or belongs to a batch that a
    crash cut short and SendGrid will retry): it is left alone and the cursor stays before it. In an older
    segment nothing will ever be added, so such a tail is crash debris: it is set aside in the rejects
    table (it was never acknowledged) and the cursor moves on.
    """
    name, offset = cursor
    current = segment_number(name) if name else None
    rejects: list[Reject] = []
    for index, path in enumerate(segments):
        number = segment_number(path.name)
        if current is not None and number is not None and number < current:
            continue
        start = offset if number == current else 0
        sealed = index < len(segments) - 1
        read = read_lines(path, start, max_bytes)
        if read.data:
            rows, bad, salvaged = _parse(read.data, read.start, path.name)
            return Chunk(rows, rejects + bad, path.name, read.end, salvaged)
        if read.tail and sealed:
            rejects.append((path.name, read.end, "incomplete last line of a closed segment", _decoded(read.tail)))
            log.warning("set aside %d bytes of crash debris at the end of %s", len(read.tail), path.name)
        if not sealed:
            return Chunk([], rejects, path.name, read.end) if rejects else None
        current, offset = number, 0
    return Chunk([], rejects, name, offset) if rejects else None


def _decoded(line: bytes) -> str:
    return line.decode("utf-8", "replace")


def _parse(data: bytes, start: int, segment: str) -> tuple[list[tuple[Any, ...]], list[Reject], list[Salvaged]]:
    rows: list[tuple[Any, ...]] = []
    rejects: list[Reject] = []
    salvaged: list[Salvaged] = []
    offset = start
    for line in data.split(b"\n")[:-1]:
        event: Any = None
        received_at = ""
        try:
            received_at, event = decode_line(line)
            rows.append(event_row(event, received_at, segment, offset))
        except (ValueError, RecursionError) as exc:  # one bad line is set aside; the loader never stops on it
            rejects.append((segment, offset, str(exc)[:500], _decoded(line)))
            if isinstance(event, dict) and (opt_out := _opt_out(event, received_at)):
                salvaged.append(opt_out)
        offset += len(line) + 1
    return rows, rejects, salvaged


def _opt_out(event: dict[str, Any], received_at: str) -> Salvaged | None:
    """(email, reason, event id, seen at) of a suppressing event, however broken its other fields; else None.

    Opt-out always wins: an unsubscribe whose timestamp is garbage is still a person asking to stop.
    """
    kind, email = event.get("event"), event.get("email")
    if kind not in SUPPRESSING_EVENTS or not isinstance(email, str) or not email.strip():
        return None
    reason = "blocked" if kind == "bounce" and event.get("type") == "blocked" else str(kind)
    try:  # its own time may be what is broken: when it was stored, else now
        seen = _received(received_at) or datetime.now(UTC).replace(tzinfo=None)
    except ValueError:
        seen = datetime.now(UTC).replace(tzinfo=None)
    return _text(email) or "", reason, _text(event.get("sg_event_id")) or "", seen


def _received(received_at: str) -> datetime | None:
    """The receiver's stamp as naive UTC; ValueError if it is not one."""
    return datetime.fromisoformat(received_at).astimezone(UTC).replace(tzinfo=None) if received_at else None

"""HubSpot property values -> contract values: date-times, numbers, booleans, names, locales and consent, and the
default value maps of deal types, stages and call outcomes."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from kizuna.core.contract import ColumnType

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


# HubSpot's default deal types and pipeline stages -> the contract's values (the options extend or replace them).
DEFAULT_DEAL_TYPES = {
    "newbusiness": "new",
    "existingbusiness": "upsell",
    "new": "new",
    "upsell": "upsell",
    "cross_sell": "cross_sell",
    "crosssell": "cross_sell",
    "renewal": "renewal",
}
DEFAULT_DEAL_STAGES = {
    "appointmentscheduled": "qualification",
    "qualifiedtobuy": "qualification",
    "presentationscheduled": "proposal",
    "decisionmakerboughtin": "proposal",
    "contractsent": "negotiation",
    "closedwon": "closed_won",
    "closedlost": "closed_lost",
}
# HubSpot's default call outcomes (hs_call_disposition GUIDs) -> kizuna's outcome words.
DEFAULT_CALL_DISPOSITIONS = {
    "f240bbac-87c9-4f6e-bf70-924b57d47db7": "conversation",  # Connected
    "73a0d17f-1163-4015-bdd5-ec830791da20": "no_answer",  # No answer
    "b2cf5968-551e-4856-9783-52b3da59a7d0": "voicemail",  # Left voicemail
    "a4c4c377-d246-4b32-a13b-75a56a4cd0ff": "left_message",  # Left live message
    "9d9162e7-6cf3-4944-bf63-4dff82258764": "busy",  # Busy
    "17b47fee-58de-441e-a44c-c6300d46f273": "wrong_number",  # Wrong number
}
DEFAULT_VISIT_MEETING_TYPES = ("visit", "訪問")  # hs_activity_type values that make a meeting a visit


def parse_timestamp(value: str | None) -> datetime | None:
    """HubSpot date-times: ISO 8601 (with Z or an offset) or epoch milliseconds; returned in UTC."""
    if not value:
        return None
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_date(value: str | None, timezone: str = "UTC") -> date | None:
    """HubSpot date properties: `YYYY-MM-DD`, or midnight UTC in epoch milliseconds or ISO 8601. A date-time
    that is not midnight UTC (a date-time property mapped to a date column) gives its date in `timezone`."""
    if value and len(value) == 10 and value[4] == "-":
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    at = parse_timestamp(value)
    if at is None:
        return None
    if at.time() == time(0) or timezone == "UTC":
        return at.date()
    return at.astimezone(ZoneInfo(timezone)).date()


def to_millis(value: str | None) -> int | None:
    at = parse_timestamp(value)
    return None if at is None else round(at.timestamp() * 1000)


def millis_to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _decimal(value: str | None) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def boolean(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = str(value).strip().lower()
    return True if lowered in _TRUE else False if lowered in _FALSE else None


def _integer(value: str | None) -> int | None:
    number = _decimal(value)
    return int(number) if number is not None else None


def _text(value: str | None) -> str | None:
    return value.strip() or None if isinstance(value, str) else value


READERS: dict[ColumnType, Callable[[str | None], object]] = {
    ColumnType.TEXT: _text,
    ColumnType.INTEGER: _integer,
    ColumnType.MONEY: _decimal,
    ColumnType.NUMBER: _decimal,
    ColumnType.DATE: parse_date,
    ColumnType.TIMESTAMP: parse_timestamp,
    ColumnType.BOOLEAN: boolean,
}


def full_name(first: str | None, last: str | None) -> str | None:
    """Japanese (and other CJK) names family name first, others given name first."""
    first, last = (first or "").strip(), (last or "").strip()
    if not first or not last:
        return first or last or None
    return f"{last} {first}" if _CJK.search(first + last) else f"{first} {last}"


def locale(language: str | None) -> str | None:
    """hs_language ('ja', 'ja-jp', 'en-us' ...) -> the contract's ja/en; other languages stay empty."""
    lowered = (language or "").strip().lower()
    return lowered[:2] if lowered[:2] in ("ja", "en") else None


def marketing_opt_in(props: Mapping[str, str | None]) -> bool | None:
    """False when the contact opted out of all email; True when the legal basis is consent; else unknown."""
    if boolean(props.get("hs_email_optout")):
        return False
    if "consent" in (props.get("hs_legal_basis") or "").lower():
        return True
    return None

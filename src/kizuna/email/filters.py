"""Jinja filters for Japanese (and English) business email: money, dates, honorifics, company names."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

# Symbol and minor-unit digits; currencies not listed print as "1,234.56 XXX".
_CURRENCIES: dict[str, tuple[str, int]] = {
    "JPY": ("¥", 0),
    "USD": ("$", 2),
    "EUR": ("€", 2),
    "GBP": ("£", 2),
    "KRW": ("₩", 0),
}
_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WEEKDAYS_JA = "月火水木金土日"

_WHITESPACE = re.compile(r"\s+")  # str patterns match Unicode whitespace, including the full-width U+3000
_HONORIFICS = ("様", "殿", "御中")
_LEGAL_FORMS = (
    "株式会社", "有限会社", "合同会社", "合名会社", "合資会社",
    "一般社団法人", "一般財団法人", "公益社団法人", "公益財団法人",
    "特定非営利活動法人", "医療法人", "学校法人", "社会福祉法人",
)  # fmt: skip
# Machine-dependent abbreviations render badly in some mail clients; business mail spells them out.
_ABBREVIATIONS = {
    "㈱": "株式会社", "(株)": "株式会社", "（株）": "株式会社",
    "㈲": "有限会社", "(有)": "有限会社", "（有）": "有限会社",
}  # fmt: skip
_CJK = r"[\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]"
_LEGAL = "|".join(_LEGAL_FORMS)
_SPACE_AFTER_LEGAL = re.compile(rf"({_LEGAL})\s+(?={_CJK})")
_SPACE_BEFORE_LEGAL = re.compile(rf"(?<={_CJK})\s+({_LEGAL})")


def _decimal(value: Any) -> Decimal:
    """A finite Decimal from an int, float, Decimal or numeric string; bool and None are mistakes."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"expected a number, got {value!r}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # repr is the shortest round-trip text: 0.1 stays 0.1
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            raise ValueError(f"expected a number, got {value!r}") from None
    else:
        try:  # numpy and pandas scalars
            number = Decimal(repr(float(value)))
        except (TypeError, ValueError):
            raise TypeError(f"expected a number, got {type(value).__name__} {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def money(value: Any, currency: str = "JPY") -> str:
    """80000, 'JPY' → '¥80,000'; 1234.5, 'USD' → '$1,234.50'; -5 → '-¥5'; unknown codes → '12.00 CHF'."""
    code = str(currency).strip().upper()
    symbol, places = _CURRENCIES.get(code, ("", 2))
    amount = _decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if amount < 0 else ""
    digits = f"{abs(amount):,.{places}f}"
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {code}"


def yen(value: Any) -> str:
    """80000 → '¥80,000' (rounded half up to whole yen)."""
    return money(value, "JPY")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):  # before date: datetime is a date subclass
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise ValueError(f"expected an ISO date like 2026-12-31, got {value!r}") from None
    raise TypeError(f"expected a date, got {type(value).__name__} {value!r}")


def date_ja(value: Any, weekday: bool = False) -> str:
    """date(2026, 12, 31) → '2026年12月31日', with weekday=True '2026年12月31日（木）'."""
    day = _date(value)
    text = f"{day.year}年{day.month}月{day.day}日"
    return f"{text}（{_WEEKDAYS_JA[day.weekday()]}）" if weekday else text


def date_en(value: Any, weekday: bool = False) -> str:
    """date(2026, 12, 31) → 'December 31, 2026', with weekday=True 'Thursday, December 31, 2026'."""
    day = _date(value)
    text = f"{_MONTHS_EN[day.month - 1]} {day.day}, {day.year}"
    return f"{_WEEKDAYS_EN[day.weekday()]}, {text}" if weekday else text


def _clean(value: Any) -> str:
    """Text with runs of whitespace collapsed; None and NaN (an empty cell read by pandas) become ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return _WHITESPACE.sub(" ", str(value)).strip()


def honorific(name: Any, locale: str = "ja") -> str:
    """'山田 太郎' → '山田 太郎 様'; empty → 'ご担当者様'. In English: the name as is, or 'Customer'."""
    cleaned = _clean(name)
    if str(locale).lower().startswith("en"):
        return cleaned or "Customer"
    if not cleaned:
        return "ご担当者様"
    if cleaned.endswith(_HONORIFICS):
        return cleaned
    return f"{cleaned} 様"


def company(name: Any) -> str:
    """'株式会社　みらい  物産' → '株式会社みらい 物産': collapse spaces, spell out ㈱, no space at 株式会社 + kanji/kana."""
    cleaned = _clean(name)
    for short, full in _ABBREVIATIONS.items():
        cleaned = cleaned.replace(short, full)
    cleaned = _SPACE_AFTER_LEGAL.sub(r"\1", cleaned)
    return _SPACE_BEFORE_LEGAL.sub(r"\1", cleaned)


FILTERS: dict[str, Callable[..., str]] = {
    "yen": yen,
    "money": money,
    "date_ja": date_ja,
    "date_en": date_en,
    "honorific": honorific,
    "company": company,
}

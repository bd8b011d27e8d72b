"""Filters for Japanese business email: money, dates, honorifics, company names."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from kizuna.email.filters import company, date_en, date_ja, honorific, money, yen


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (80000, "¥80,000"),
        (Decimal("80000.00"), "¥80,000"),
        (80000.4, "¥80,000"),
        (1234.5, "¥1,235"),  # half up, not banker's rounding
        (-80000, "-¥80,000"),
        (-0.4, "¥0"),
        (0, "¥0"),
        (1_234_567_890, "¥1,234,567,890"),
        ("80,000", "¥80,000"),
    ],
    ids=["int", "decimal", "float", "half-up", "negative", "negative-rounds-to-zero", "zero", "billions", "text"],
)
def test_yen(value: Any, expected: str) -> None:
    assert yen(value) == expected


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (80000, "JPY", "¥80,000"),
        (80000, "jpy", "¥80,000"),
        (1234.5, "USD", "$1,234.50"),
        (Decimal("-9.999"), "EUR", "-€10.00"),
        (12, "CHF", "12.00 CHF"),
    ],
    ids=["jpy", "lowercase-code", "usd-cents", "eur-negative-rounding", "unknown-code"],
)
def test_money(value: Any, currency: str, expected: str) -> None:
    assert money(value, currency) == expected


@pytest.mark.parametrize(
    "value",
    [None, True, "abc", float("nan"), float("inf"), object()],
    ids=["none", "bool", "not-a-number", "nan", "inf", "object"],
)
def test_money_rejects_non_numbers(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        yen(value)


@pytest.mark.parametrize(
    ("value", "weekday", "expected"),
    [
        (dt.date(2026, 11, 23), False, "2026年11月23日"),
        (dt.date(2026, 12, 31), True, "2026年12月31日（木）"),
        (dt.datetime(2026, 1, 5, 23, 59), False, "2026年1月5日"),
        ("2026-12-31", False, "2026年12月31日"),
    ],
    ids=["date", "weekday", "datetime", "iso-text"],
)
def test_date_ja(value: Any, weekday: bool, expected: str) -> None:
    assert date_ja(value, weekday=weekday) == expected


@pytest.mark.parametrize(
    ("value", "weekday", "expected"),
    [
        (dt.date(2026, 11, 23), False, "November 23, 2026"),
        (dt.date(2026, 12, 31), True, "Thursday, December 31, 2026"),
    ],
    ids=["date", "weekday"],
)
def test_date_en(value: Any, weekday: bool, expected: str) -> None:
    assert date_en(value, weekday=weekday) == expected


@pytest.mark.parametrize("value", [None, 20261231, "31/12/2026"], ids=["none", "int", "not-iso"])
def test_dates_reject_non_dates(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        date_ja(value)


@pytest.mark.parametrize(
    ("name", "locale", "expected"),
    [
        ("山田 太郎", "ja", "山田 太郎 様"),
        ("山田　太郎", "ja", "山田 太郎 様"),
        ("  山田 太郎  ", "ja", "山田 太郎 様"),
        ("山田 太郎 様", "ja", "山田 太郎 様"),
        ("", "ja", "ご担当者様"),
        (None, "ja", "ご担当者様"),
        (float("nan"), "ja", "ご担当者様"),
        ("Taro Yamada", "en", "Taro Yamada"),
        ("", "en", "Customer"),
        ("   ", "en-US", "Customer"),
    ],
    ids=[
        "name", "full-width-space", "padded", "already-honoured", "empty", "none", "pandas-nan",
        "en-name", "en-empty", "en-us-blank",
    ],
)  # fmt: skip
def test_honorific(name: Any, locale: str, expected: str) -> None:
    assert honorific(name, locale) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("株式会社　みらい物産", "株式会社みらい物産"),
        ("みらい物産  株式会社", "みらい物産株式会社"),
        ("㈱みらい物産", "株式会社みらい物産"),
        ("みらい物産（株）", "みらい物産株式会社"),
        ("  Acme   Japan  Inc. ", "Acme Japan Inc."),
        ("株式会社 ABC", "株式会社 ABC"),
        ("一般社団法人　日本 SaaS 協会", "一般社団法人日本 SaaS 協会"),
    ],
    ids=["full-width-space", "suffix-form", "circled-kabu", "parenthesised-kabu", "latin", "latin-kept", "association"],
)
def test_company(name: str, expected: str) -> None:
    assert company(name) == expected

"""Retry-After as the HTTP spec writes it: delta-seconds or an HTTP date, never a negative or endless wait."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from kizuna.core.retry_after import retry_after_seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), ("0", 0.0), ("-3", 0.0), ("1.5", 1.5), ("86400", 60.0), ("soon", None), ("", None), (None, None)],
)
def test_delta_seconds_are_read_and_bounded(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, cap=60.0) == expected


def test_an_http_date_is_the_time_until_it() -> None:
    ahead = retry_after_seconds(formatdate(time.time() + 30, usegmt=True), cap=60.0)
    assert ahead is not None and 27.0 <= ahead <= 30.0
    assert retry_after_seconds(formatdate(time.time() - 30, usegmt=True), cap=60.0) == 0.0  # already past

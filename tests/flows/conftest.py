"""Flow tests send at any hour: an all-day window, every day (the calendar has its own tests in tests/ops)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def send_any_time() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KIZUNA_SEND_WINDOW", "00:00-24:00")
        mp.setenv("KIZUNA_SEND_ON_BUSINESS_DAYS_ONLY", "false")
        yield

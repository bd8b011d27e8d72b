"""Fixtures for the studio tests: the session's demo warehouse (shared with tests/reporting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reporting.demo_warehouse import demo_warehouse


@pytest.fixture(scope="session")
def demo_warehouse_path() -> Path:
    return demo_warehouse()

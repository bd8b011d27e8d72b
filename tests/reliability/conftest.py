"""Fixtures for the reliability suite: the delivery fixtures of tests/campaigns, a good load without dbt, polling."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kizuna.core.settings import PROJECT_DIR
from tests.campaigns.conftest import sg_make_warehouse, sg_settings  # noqa: F401 (fixtures)
from tests.scripts import python_script
from tests.standins.sendgrid_server import sendgrid_standin  # noqa: F401 (a fixture)

AS_OF = dt.date(2026, 11, 23)


@pytest.fixture(scope="module", autouse=True)
def send_any_time() -> Iterator[None]:
    """Flows here send at any hour (the calendar has its own tests in tests/ops)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KIZUNA_SEND_WINDOW", "00:00-24:00")
        mp.setenv("KIZUNA_SEND_ON_BUSINESS_DAYS_ONLY", "false")
        yield


@pytest.fixture(scope="session")
def demo_sources(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """Demo source sets of 150 customers by seed (generated once each): two seeds give two different loads."""
    from kizuna.demo.generate import generate_demo_data

    made: dict[int, Path] = {}

    def get(seed: int) -> Path:
        if seed not in made:
            made[seed] = tmp_path_factory.mktemp(f"reliability-demo-{seed}")
            generate_demo_data(made[seed], customers=150, seed=seed, as_of=AS_OF)
        return made[seed]

    return get


def start_victim(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A Python process running ``script`` (it blocks where the test wants it killed, after writing a marker)."""
    return subprocess.Popen(
        python_script(script, *args),
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_marker(marker: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Poll (bounded) until the victim says it reached the point where it is to be killed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists():
            return
        if proc.poll() is not None:
            output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"the victim exited ({proc.returncode}) before the kill point:\n{output[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the victim did not reach the kill point within {timeout} s")


# The victim's way of stopping where it is told: write the marker, then block until SIGKILL.
BLOCK_HERE = """
import pathlib, threading
def block_here(marker):
    pathlib.Path(marker).write_text("reached", encoding="utf-8")
    threading.Event().wait()
"""


from tests.email.conftest import make_renderer, renderer  # noqa: E402, F401 (fixtures)
from tests.tracking.conftest import signer, tracking_settings  # noqa: E402, F401 (fixtures)


def examples(n: int) -> int:
    """Examples for one property: n under the "ci" hypothesis profile (tests/conftest.py), scaled under others."""
    from hypothesis import settings

    return max(1, n * settings.default.max_examples // 100)

"""Fixtures for operations tests: a real `prefect server start` on loopback, subprocess environments, demo data."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kizuna.core.settings import PROJECT_DIR

AS_OF = dt.date(2026, 11, 23)
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess: this one without Prefect's API settings, quiet, sending at any hour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "KIZUNA_"))}
    env.update(
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_LOGGING_TO_API_ENABLED="false",
        DO_NOT_TRACK="1",
        GX_ANALYTICS_ENABLED="false",
        KIZUNA_PROJECT_DIR=str(PROJECT_DIR),
        KIZUNA_SEND_WINDOW="00:00-24:00",
        KIZUNA_SEND_ON_BUSINESS_DAYS_ONLY="false",
        # src first: the checkout under test, even where the virtualenv has another checkout installed
        PYTHONPATH=os.pathsep.join((str(PROJECT_DIR / "src"), str(PROJECT_DIR))),
    )
    env.update(extra)
    return env


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed next to {sys.executable}")
    return str(path)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prefect server start` on 127.0.0.1 with its own PREFECT_HOME; yields the API URL. Ready in ≈ 20-40 s."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = _free_port()
    env = base_env(PREFECT_HOME=str(home), PREFECT_SERVER_UI_ENABLED="false")
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [tool("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"prefect server exited with {proc.returncode}: {(home / 'server.log').read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("prefect server did not answer /api/health within 120 s")
            time.sleep(0.5)
        yield api
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo source set (150 customers): enough for every mart and a few sends, quick to build."""
    from kizuna.demo.generate import generate_demo_data

    out = tmp_path_factory.mktemp("ops-demo")
    generate_demo_data(out, customers=150, seed=11, as_of=AS_OF)
    return out


@pytest.fixture
def workspace(tmp_path: Path, small_demo: Path) -> Path:
    """tmp_path/src (a copy of the demo sources), tmp_path/var and tmp_path/warehouse.duckdb to be."""
    shutil.copytree(small_demo, tmp_path / "src")
    return tmp_path


def workspace_env(ws: Path, **extra: str) -> dict[str, str]:
    return base_env(
        KIZUNA_SOURCE_DIR=str(ws / "src"),
        KIZUNA_WAREHOUSE=str(ws / "warehouse.duckdb"),
        KIZUNA_VAR_DIR=str(ws / "var"),
        KIZUNA_OUTBOX_DIR=str(ws / "var" / "outbox"),
        **extra,
    )


def kizuna(ws: Path, *args: str, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess[str]:
    """`kizuna ARGS` in its own process, stdout and stderr piped into one stream as `> file 2>&1` would."""
    return subprocess.run(
        [tool("python"), "-m", "kizuna.cli", *args],
        env=workspace_env(ws, **extra),
        cwd=ws,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def write_sources_by_hand(directory: Path, customer_ids: list[str]) -> Path:
    """customers.csv and subscriptions.csv as a person might export them: one row per id given (repeats kept)."""
    from tests.conftest import write_csv

    directory.mkdir(parents=True, exist_ok=True)
    write_csv(
        directory / "customers.csv",
        ["customer_id", "name", "industry", "country", "created_at"],
        [[cid, f"株式会社テスト{i}", "製造", "JP", "2024-04-01 09:00:00"] for i, cid in enumerate(customer_ids)],
    )
    write_csv(
        directory / "subscriptions.csv",
        ["subscription_id", "customer_id", "start_date", "end_date", "mrr", "currency", "status"],
        [
            [f"S{i:04d}", cid, "2025-01-01", "", 50000, "JPY", "active"]
            for i, cid in enumerate(dict.fromkeys(customer_ids))
        ],
    )
    return directory

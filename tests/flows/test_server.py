"""The temporary server started early (flows/server.py) only where a flow would start one itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

from flows.server import start_temporary_server_early


def _temporary_servers() -> list[SubprocessASGIServer]:
    return [s for s in SubprocessASGIServer._instances.values() if s.running]


def test_no_temporary_server_when_an_api_url_is_set() -> None:
    # A configured server (PREFECT_API_URL) is the one the flow talks to: nothing is started beside it.
    before = _temporary_servers()
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api", PREFECT_SERVER_EPHEMERAL_ENABLED: True}):
        start_temporary_server_early()()
    assert _temporary_servers() == before


def test_no_temporary_server_when_ephemeral_mode_is_off() -> None:
    # Without a URL and without ephemeral mode the flow itself refuses to run; starting one here would hide it.
    before = _temporary_servers()
    with temporary_settings({PREFECT_API_URL: "", PREFECT_SERVER_EPHEMERAL_ENABLED: False}):
        start_temporary_server_early()()
    assert _temporary_servers() == before


_START_AND_RUN = """
from flows.server import start_temporary_server_early

start_temporary_server_early()()
from prefect import flow, task
from prefect.client.orchestration import get_client


@task
def double(i: int) -> int:
    return 2 * i


@flow
def doubled() -> int:
    return double(21)


assert doubled() == 42
with get_client(sync_client=True) as client:
    print("block types:", len(client.read_block_types()))
"""


def test_the_temporary_server_registers_no_block_types_and_runs_flows(tmp_path: Path) -> None:
    # Registering them imports every installed Prefect collection (prefect-dbt, dbt) in the server at each start;
    # a flow with tasks runs without them. A fresh PREFECT_HOME, in a process of its own, as `kizuna run` starts.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    done = subprocess.run(
        [sys.executable, "-c", _START_AND_RUN], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "block types: 0" in done.stdout

"""The temporary server started early (flows/server.py) only where a flow would start one itself."""

from __future__ import annotations

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


# That the temporary server `kizuna run` starts registers no block types and runs the flow: tests/ops/test_run_output.py
# (the piped run, on a fresh PREFECT_HOME).

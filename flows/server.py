"""Prefect's temporary server, started early: it starts up while `kizuna run` imports the flow and its libraries.

Without PREFECT_API_URL a flow starts a temporary server (a uvicorn subprocess) when it first needs a client,
and waits for it: the server's start-up (seconds) followed the process's imports (seconds) instead of
overlapping them. This module imports nothing heavy at import time; flows/support.py loads the rest of kizuna.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# At start-up a Prefect server imports every installed Prefect collection (prefect-dbt, and dbt with it) to register
# their block types, or to hash them and find that it need not: ≈ 2 s of the ≈ 6 s of CPU a migrated temporary
# server takes to answer. Nothing needs them registered: a block registers its own type when it is saved, and the
# temporary server serves `kizuna run` alone. A value set in the environment or a Prefect profile wins.
TEMPORARY_SERVER_ENV = {
    "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
    "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
}


def _wait_for(server: Any) -> None:
    try:
        server.start()  # the subprocess, then its health check every 0.1 s
    except Exception:  # the flow's own client starts it again, and reports what fails
        log.debug("starting Prefect's temporary server early failed; the flow starts it", exc_info=True)


def start_temporary_server_early() -> Callable[[], None]:
    """Start the temporary server a flow would start, if it would start one; call the result before the first
    flow runs: it waits for the start to end, so no client meets a server that does not answer yet.

    The same condition and the same server get_client uses (one per process), so the flow finds it running.
    The server registers no block types at start-up (TEMPORARY_SERVER_ENV). Prefect's modules are imported here, in
    the caller's thread; the thread only waits for the subprocess (two threads importing Prefect's circular modules
    at once could deadlock on the import locks).
    """
    import prefect.main  # noqa: F401  (sets up Prefect's logging, as `from prefect import flow` does: its lines go to the run log)
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return lambda: None
    from prefect.server.api.server import SubprocessASGIServer

    for key, value in TEMPORARY_SERVER_ENV.items():  # the subprocess's environment is this process's
        os.environ.setdefault(key, value)
    thread = threading.Thread(
        target=_wait_for, args=(SubprocessASGIServer(),), name="prefect-temporary-server", daemon=True
    )
    thread.start()
    return thread.join

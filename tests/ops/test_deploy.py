"""Done-when of issue 9: on a loopback `prefect server start`, set up, `prefect deploy --all`, and a worker runs `daily`."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from kizuna.core.settings import PROJECT_DIR
from tests.ops.conftest import AS_OF, tool, workspace_env

EXPECTED_SCHEDULES = {
    "daily": ("0 9 * * *", "Asia/Tokyo"),
    "events-load": ("*/15 * * * *", "Asia/Tokyo"),
    "train-scores": ("0 6 * * 0", "Asia/Tokyo"),
}
ARTIFACTS = {"daily-summary", "rows-loaded", "quality-gate-report", "mrr-kpis-monthly", "campaigns", "sends-by-state"}


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`args` in a process group of its own, killed whole however the test ends: a worker's flow run is its child,
    and a worker killed alone on a timeout left that flow run running on after the test."""
    proc = subprocess.Popen(
        args,
        env=env,
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group has ended
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)
    assert done.returncode == 0, (
        f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


def _post(api: str, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{api}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def test_deploy_all_then_a_worker_runs_daily_with_its_artifacts(prefect_server: str, workspace: Path) -> None:
    api = prefect_server
    # dbt in one task: a task run per node (prefect_dbt_invoker) would cost ≈ 45 s of this test's 110 for its 314
    # nodes; tests/flows/test_support.py runs the node tasks on a small selection.
    env = workspace_env(workspace, PREFECT_API_URL=api, KIZUNA_DBT_NODE_TASKS="never")
    kizuna = [tool("python"), "-m", "kizuna.cli"]

    first = _run([*kizuna, "prefect", "setup"], env, timeout=60)
    again = _run([*kizuna, "prefect", "setup"], env, timeout=60)
    assert "created" in first.stdout and "already there" in again.stdout
    _run([tool("prefect"), "--no-prompt", "deploy", "--all"], env, timeout=120)

    deployments = {d["name"]: d for d in _post(api, "/deployments/filter", {})}
    assert set(EXPECTED_SCHEDULES) <= set(deployments)
    for name, (cron, timezone) in EXPECTED_SCHEDULES.items():
        [schedule] = [s["schedule"] for s in deployments[name]["schedules"]]
        assert (schedule["cron"], schedule["timezone"]) == (cron, timezone), name
        assert deployments[name]["work_pool_name"] == "kizuna-process"
        assert deployments[name]["enforce_parameter_schema"]
    daily = deployments["daily"]

    for bad in (20261123, "notadate"):
        refused = httpx.post(
            f"{api}/deployments/{daily['id']}/create_flow_run", json={"parameters": {"as_of": bad}}, timeout=30
        )
        assert refused.status_code in (409, 422), f"as_of={bad!r} must be refused by the parameter schema"

    params = {"source_dir": str(workspace / "src"), "warehouse": str(workspace / "warehouse.duckdb")}
    run = _post(api, f"/deployments/{daily['id']}/create_flow_run", {"parameters": {**params, "as_of": str(AS_OF)}})
    _run([tool("prefect"), "worker", "start", "--pool", "kizuna-process", "--run-once"], env, timeout=300)

    deadline = time.monotonic() + 60
    while True:
        state = httpx.get(f"{api}/flow_runs/{run['id']}", timeout=30).json()["state"]
        if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert state["type"] == "COMPLETED", state

    artifacts = _post(api, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    assert {a["key"] for a in artifacts} >= ARTIFACTS
    summary = next(a for a in artifacts if a["key"] == "daily-summary")["data"]
    assert "## Loaded" in summary and "customers 150," in summary and "## Sends by state" in summary
    built = re.search(r"^- (\d+) models built, (\d+) tests passed$", summary, re.MULTILINE)
    assert built and int(built[1]) >= 10 and int(built[2]) > 50

    tasks = _post(
        api,
        "/task_runs/filter",
        {"flow_runs": {"id": {"any_": [run["id"]]}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 200},
    )
    names = {t["name"] for t in tasks}
    assert {"ingest", "quality-gate", "dbt-build", "score"} <= {n.rsplit("-", 1)[0] for n in names}

"""Running `dbt build` in-process on the warehouse, failing loudly on any failed model or test."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from kizuna.settings import Settings

_OK = {"success", "pass"}
_BAD = {"error", "fail", "runtime error"}


@dataclass
class NodeResult:
    name: str
    resource_type: str
    status: str
    message: str | None = None
    seconds: float = 0.0


@dataclass
class BuildResult:
    nodes: list[NodeResult] = field(default_factory=list)

    @property
    def failed(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status in _BAD]

    def count(self, resource_type: str, statuses: set[str] | None = None) -> int:
        statuses = statuses or _OK
        return sum(1 for n in self.nodes if n.resource_type == resource_type and n.status in statuses)

    @property
    def warnings(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status == "warn"]


class DbtBuildError(RuntimeError):
    """A model failed or a data test found bad rows: the marts must not be used."""

    def __init__(self, result: BuildResult | None, detail: str) -> None:
        self.result = result
        super().__init__(detail)


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    """dbt's profiles.yml reads env_var(); set them only for the duration of the call."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _release_duckdb() -> None:
    """Close the DuckDB instance dbt-duckdb keeps open in this process after a command.

    Left open, it holds the warehouse file until the process exits: later read-only opens in this
    process fail ("different configuration"), other processes find the file locked, and duckdb prints
    "nanobind: leaked" at exit. dbt-duckdb has no public call for this, so we close its environment.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if env is not None:
            env.close()


def dbt_args(settings: Settings, command: str, as_of: date, extra: list[str] | None = None) -> list[str]:
    target = settings.var_dir / "dbt"
    return [
        command,
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.dbt_project_dir),
        "--target-path",
        str(target / "target"),
        "--log-path",
        str(target / "logs"),
        "--vars",
        json.dumps({"as_of": as_of.isoformat()}),
        *(extra or []),
    ]


def build(
    settings: Settings,
    as_of: date,
    select: str | None = None,
    on_node: Callable[[NodeResult], None] | None = None,
) -> BuildResult:
    """`dbt build` (models, then their tests) on settings.warehouse as of a date; raise on any failure."""
    from dbt.cli.main import dbtRunner

    def callback(event: Any) -> None:
        if on_node is None or event.info.name != "NodeFinished":
            return
        node = event.data.node_info
        on_node(NodeResult(node.unique_id, node.resource_type, node.node_status))

    extra = ["--select", select] if select else []
    args = dbt_args(settings, "build", as_of, extra)
    env = {"KIZUNA_WAREHOUSE": str(Path(settings.warehouse).resolve()), "DO_NOT_TRACK": "1"}
    with _env(env):
        try:
            outcome = dbtRunner(callbacks=[callback]).invoke(args)
        finally:
            _release_duckdb()
    result = BuildResult()
    run_results = getattr(outcome.result, "results", None) or []
    for r in run_results:
        node = r.node
        result.nodes.append(
            NodeResult(node.unique_id, str(node.resource_type), str(r.status), r.message, float(r.execution_time))
        )
    if outcome.exception is not None:
        raise DbtBuildError(result, f"dbt could not run: {outcome.exception}")
    if not outcome.success or result.failed:
        lines = [f"{n.name}: {n.status}: {n.message}" for n in result.failed]
        raise DbtBuildError(result, "dbt build failed; the marts are not to be used:\n  " + "\n  ".join(lines))
    return result

"""Secrets never leak: a daily run that sends through SendGrid (with refusals, 5xx and a hang), a failed run that
alerts, exports and the report, with recognisable fake secrets set; every log line, error, Prefect artifact and
record, alert and file under var/ (and every warehouse table) is searched for them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from bench.events.loadgen import Signer
from kizuna.quality.gate import GateFailedError
from kizuna.reporting.export import export_mart
from tests.reliability.conftest import AS_OF
from tests.standins.sendgrid_server import SendGridStandin
from tests.standins.webhook_server import webhook_standin

SENDGRID_KEY = "SG.canarysendgridkey.Zx9CanaryNeverLeaks0123456789"
UNSUBSCRIBE_SECRET = "canary-unsubscribe-secret-5c1d"
ALERT_TOKEN = "canary-alert-token-8e7f"


def _files_text(root: Path) -> dict[str, str]:
    """Every file under root as text (xlsx and other zips unpacked), DuckDB files skipped (searched by SQL)."""
    texts: dict[str, str] = {}
    for path in root.rglob("*"):
        if not path.is_file() or path.suffix in (".duckdb", ".wal"):
            continue
        data = path.read_bytes()
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                data = b"".join(z.read(n) for n in z.namelist())
        texts[str(path)] = data.decode("utf-8", "replace")
    return texts


def _warehouse_text(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()
        return "\n".join(str(con.execute(f'SELECT * FROM "{s}"."{t}"').fetchall()) for s, t in tables)
    finally:
        con.close()


def _prefect_records() -> str:
    """Artifacts, flow runs (parameters, state messages), task runs and logs, read back through the client."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        parts = [
            *(a.model_dump_json() for a in client.read_artifacts()),
            *(r.model_dump_json() for r in client.read_flow_runs()),
            *(t.model_dump_json() for t in client.read_task_runs()),
            *(log.model_dump_json() for log in client.read_logs()),
        ]
    return "\n".join(parts)


@pytest.mark.usefixtures("prefect_harness")
def test_no_secret_reaches_logs_errors_artifacts_alerts_or_files(
    tmp_path: Path,
    demo_sources: Callable[[int], Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from flows.daily import daily

    webhook_key = Signer().public_key_b64
    secrets = {
        "sendgrid key": SENDGRID_KEY,
        "unsubscribe secret": UNSUBSCRIBE_SECRET,
        "alert token": ALERT_TOKEN,
        "webhook key": webhook_key,
    }
    shutil.copytree(demo_sources(11), tmp_path / "src")
    var = tmp_path / "var"
    caplog.set_level(logging.INFO)  # what an operator's INFO log shows, httpx's request lines included
    for name in ("kizuna", "python_http_client", "sendgrid"):  # and our own and SendGrid's client's DEBUG
        caplog.set_level(logging.DEBUG, logger=name)
    prefect_logger = logging.getLogger("prefect")
    prefect_logger.addHandler(caplog.handler)  # Prefect's loggers do not all propagate to the root
    errors: list[str] = []
    with SendGridStandin() as sendgrid, webhook_standin(f"/services/T0/B0/{ALERT_TOKEN}") as hook:
        sendgrid.state.script.extend(["429", "202", "400", "500", "hang", "401"])
        sendgrid.state.rate_limit_reset_in = 0
        sendgrid.state.hang_seconds = 1.0
        for name, value in {
            "KIZUNA_VAR_DIR": str(var),
            "KIZUNA_OUTBOX_DIR": str(var / "outbox"),
            "KIZUNA_EMAIL_BACKEND": "sendgrid",
            "KIZUNA_SENDGRID_API_HOST": sendgrid.host,
            "KIZUNA_SENDGRID_API_KEY": SENDGRID_KEY,
            "KIZUNA_SENDGRID_TIMEOUT_SECONDS": "0.5",
            "KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY": webhook_key,
            "KIZUNA_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET,
            "KIZUNA_ALERT_WEBHOOK_URL": hook.url,
            "KIZUNA_APPROVAL_REQUIRED": "never",
            "KIZUNA_SEND_RATE_PER_SECOND": "0",
        }.items():
            monkeypatch.setenv(name, value)
        try:
            summary = daily(source_dir=str(tmp_path / "src"), warehouse=str(tmp_path / "w.duckdb"), as_of=AS_OF)
            # The next day's files break a critical check: the run fails and alerts.
            customers = tmp_path / "src" / "customers.csv"
            lines = customers.read_text(encoding="utf-8").splitlines(keepends=True)
            customers.write_text("".join([*lines, lines[1]]), encoding="utf-8")
            with pytest.raises(GateFailedError) as failed:
                daily(source_dir=str(tmp_path / "src"), warehouse=str(tmp_path / "w.duckdb"), as_of=AS_OF)
            errors.append(str(failed.value))
            alerts = hook.wait_for(1)
        finally:
            prefect_logger.removeHandler(caplog.handler)
        assert sendgrid.state.answers.get("401") == 1, "the run met a refused key, a 5xx and a hang"
    assert sum(c.sent for c in summary.campaigns) > 0 and alerts, "the run sent and the failure alerted"
    for mart, fmt in (("customers", "csv"), ("customers", "xlsx"), ("mrr_kpis_monthly", "csv")):
        export_mart(tmp_path / "w.duckdb", mart, fmt, var / "exports" / f"{mart}.{fmt}")  # type: ignore[arg-type]

    captured = capfd.readouterr()
    searched = {
        "log records": caplog.text + "\n".join(str(r.args) for r in caplog.records),
        "stdout and stderr": captured.out + captured.err,
        "errors": "\n".join(errors) + summary.to_markdown(),
        "alerts": "\n".join(alerts),
        "Prefect records": _prefect_records(),
        "warehouse tables (ledger, recipients, gate, loads)": _warehouse_text(tmp_path / "w.duckdb"),
        **{f"file {name}": text for name, text in _files_text(var).items()},
        **{f"PREFECT_HOME file {name}": text for name, text in _files_text(Path(os.environ["PREFECT_HOME"])).items()},
    }
    assert any("ops.send_ledger" in k or "warehouse" in k for k in searched) and len(searched) > 8
    assert any(f"file {var / 'exports'}" in k for k in searched), "the exports were searched"
    leaks = [
        f"{what} in {where}: …{text[max(0, text.find(s) - 200) : text.find(s) + 60]}…"
        for where, text in searched.items()
        for what, s in secrets.items()
        if s in text
    ]
    assert leaks == []
    sent_bodies = json.dumps([a.body for a in sendgrid.state.accepted], ensure_ascii=False)
    assert SENDGRID_KEY not in sent_bodies and UNSUBSCRIBE_SECRET not in sent_bodies

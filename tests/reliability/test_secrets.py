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
from pydantic import SecretStr

from bench.events.loadgen import Signer
from kizuna.core.settings import Settings
from kizuna.quality.gate import GateFailedError
from kizuna.reporting.export import export_mart
from tests.campaigns.conftest import SG_API_KEY, SG_AS_OF, SgWarehouse
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
            # dbt in one task (≈ 30 s less than a task per node): what dbt prints is searched all the same, in
            # var/dbt/logs/dbt.log, which both ways write; Prefect's records of the run's other tasks are searched.
            "KIZUNA_DBT_NODE_TASKS": "never",
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


def _ledger(path: Path) -> list[tuple[str, str | None]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT state, error FROM ops.send_ledger ORDER BY message_key").fetchall()
    finally:
        con.close()


def test_a_key_pasted_with_a_newline_sends_and_never_reaches_the_ledger(
    sg_make_warehouse: SgWarehouse, sg_settings: Settings, sendgrid_standin: SendGridStandin
) -> None:
    """The incident: KIZUNA_SENDGRID_API_KEY ended in a newline; 105 recipients became unknown with the whole key
    in ops.send_ledger.error, though nothing was sent. The key is stripped; every one of them is accepted."""
    from kizuna.campaigns.run import run_campaign
    from kizuna.campaigns.spec import load_campaign
    from kizuna.core.settings import PROJECT_DIR

    sg_make_warehouse(105)
    sendgrid_standin.state.api_key = SG_API_KEY  # Authorization must be exactly "Bearer <key>"
    settings = sg_settings.model_copy(update={"sendgrid_api_key": SecretStr(SG_API_KEY + "\n")})
    summary = run_campaign(settings, load_campaign(PROJECT_DIR / "campaigns" / "renewal_reminder.yml"), "r1", SG_AS_OF)
    assert (summary.sent, summary.unknown, summary.left_pending) == (105, 0, 0)
    rows = _ledger(settings.warehouse)
    assert {state for state, _ in rows} == {"accepted"} and SG_API_KEY not in _warehouse_text(settings.warehouse)


def test_a_malformed_key_stops_the_campaign_before_anything_is_claimed(
    sg_make_warehouse: SgWarehouse, sg_settings: Settings, sendgrid_standin: SendGridStandin
) -> None:
    from kizuna.campaigns.run import run_campaign
    from kizuna.campaigns.spec import load_campaign
    from kizuna.core.settings import PROJECT_DIR
    from kizuna.email.sendgrid import InvalidApiKeyError

    sg_make_warehouse(5)
    broken = SG_API_KEY[:20] + "\n" + SG_API_KEY[20:]  # a line break inside: no header can carry it
    settings = sg_settings.model_copy(update={"sendgrid_api_key": SecretStr(broken)})
    with pytest.raises(InvalidApiKeyError, match="KIZUNA_SENDGRID_API_KEY") as info:
        run_campaign(settings, load_campaign(PROJECT_DIR / "campaigns" / "renewal_reminder.yml"), "r1", SG_AS_OF)
    assert SG_API_KEY[3:20] not in str(info.value) and SG_API_KEY[21:] not in str(info.value)
    assert sendgrid_standin.state.requests == 0


@pytest.mark.parametrize(
    "error",
    [
        f"ValueError: Invalid header value b'Bearer {SENDGRID_KEY}\\n'",
        f"URLError: <urlopen error Authorization: Bearer {SENDGRID_KEY}>",
        f"RuntimeError: key={SENDGRID_KEY}",
    ],
    ids=["header-value", "authorization", "bare-key"],
)
def test_every_error_the_ledger_stores_is_scrubbed(tmp_path: Path, error: str) -> None:
    """Whatever a backend (or an unforeseen exception) says, the ledger never stores a key."""
    from kizuna.campaigns import ledger

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        ledger.ensure_ledger(con)
        con.execute(
            "INSERT INTO ops.send_ledger (message_key, campaign, contact_id, email, occasion, run_id, state, "
            "claimed_at) VALUES ('k1', 'c', 'p', 'a@example.jp', 'once', 'r1', 'pending', now())"
        )
        ledger.mark_sending(con, ["k1"])
        ledger.mark(con, [("k1", "unknown", None, error)])
        [(stored,)] = con.execute("SELECT error FROM ops.send_ledger").fetchall()
    finally:
        con.close()
    assert SENDGRID_KEY not in stored and "canarysendgridkey" not in stored and "[api key]" in stored

"""`kizuna events send-test` against a real `kizuna events serve` process on 127.0.0.1: signed, stored, loaded."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from bench.events.loadgen import ReceiverProcess
from kizuna.cli import app
from kizuna.core.settings import Settings
from kizuna.tracking.loader import load_events
from kizuna.tracking.send_test import EVENT_KINDS
from kizuna.tracking.store import decode_line
from tests.tracking.conftest import stored_lines


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY", raising=False)
    return tmp_path / "keys" / "webhook-test-key.pem"


@pytest.fixture
def receiver(tmp_path: Path, key_file: Path) -> Iterator[ReceiverProcess]:
    """The documented way: the receiver learns the test key's public half from --print-public-key."""
    code, public_key, _ = _cli("events", "send-test", "--key-file", str(key_file), "--print-public-key")
    assert code == 0 and key_file.exists()
    process = ReceiverProcess(tmp_path / "events", public_key.strip(), log=tmp_path / "receiver.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_send_test_posts_signed_events_a_real_receiver_stores(
    receiver: ReceiverProcess, key_file: Path, tmp_path: Path
) -> None:
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # a private key, even a test one
    code, out, _ = _cli("events", "send-test", "--key-file", str(key_file), "--url", receiver.url + "/sendgrid/events")
    assert code == 0, out
    assert '200 {"stored":11}' in out
    stored = [decode_line(line)[1] for line in stored_lines(receiver.events_dir)]
    assert [e["event"] for e in stored] == list(EVENT_KINDS)

    # Twice is fine (fresh ids), and only the chosen kinds.
    code, out, _ = _cli(
        "events", "send-test", "--key-file", str(key_file), "--url", receiver.url + "/sendgrid/events",
        "--event", "processed", "--event", "unsubscribe", "--email", "sendtest@example.co.jp",
    )  # fmt: skip
    assert code == 0 and '{"stored":2}' in out, out

    settings = Settings(events_dir=receiver.events_dir, warehouse=tmp_path / "w.duckdb", var_dir=tmp_path / "var")
    assert load_events(settings).inserted == 13
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        campaigns = con.execute("SELECT DISTINCT campaign FROM ops.email_events").fetchall()
        suppressed = {r[0] for r in con.execute("SELECT email FROM ops.suppressions").fetchall()}
    finally:
        con.close()
    assert campaigns == [("kizuna-send-test",)]
    assert suppressed == {"kizuna-send-test@example.invalid", "sendtest@example.co.jp"}


def test_a_receiver_with_another_key_refuses_and_the_command_says_which_setting(
    receiver: ReceiverProcess, tmp_path: Path
) -> None:
    other = tmp_path / "other-key.pem"
    code, _, err = _cli("events", "send-test", "--key-file", str(other), "--url", receiver.url + "/sendgrid/events")
    assert code == 1
    _, public_key, _ = _cli("events", "send-test", "--key-file", str(other), "--print-public-key")
    assert "answered 403" in err and f"KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY={public_key.strip()}" in err, err
    assert stored_lines(receiver.events_dir) == []


def test_no_receiver_and_bad_event_types_are_one_line_errors(key_file: Path) -> None:
    code, _, err = _cli("events", "send-test", "--key-file", str(key_file), "--url", "http://127.0.0.1:9/x")
    assert code == 1 and "no receiver at http://127.0.0.1:9/x" in err
    code, _, err = _cli("events", "send-test", "--key-file", str(key_file), "--event", "opened")
    assert code == 2 and "opened: not a SendGrid event type" in err

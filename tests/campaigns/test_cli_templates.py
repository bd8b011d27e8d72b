"""`kizuna templates lint|preview`: exit codes, preview files, a customer from the marts, a test send."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kizuna.cli.templates import app
from kizuna.core.settings import PROJECT_DIR, Settings
from tests.campaigns.conftest import SG_API_KEY, SgWarehouse
from tests.standins.sendgrid_server import SendGridStandin

runner = CliRunner()


@pytest.fixture
def sg_cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sendgrid_standin: SendGridStandin) -> Path:
    """The CLI's settings come from the environment: point them at tmp_path and the stand-in."""
    for name, value in {
        "KIZUNA_VAR_DIR": str(tmp_path / "var"),
        "KIZUNA_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "KIZUNA_EMAIL_BACKEND": "sendgrid",
        "KIZUNA_UNSUBSCRIBE_SECRET": "test-unsubscribe-secret-not-the-demo-default",
        "KIZUNA_SENDGRID_API_KEY": SG_API_KEY,
        "KIZUNA_SENDGRID_API_HOST": sendgrid_standin.host,
        "KIZUNA_SENDGRID_TIMEOUT_SECONDS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_lint_passes_for_every_shipped_template(sg_cli_env: Path) -> None:
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 0, result.output
    assert "✓ renewal_reminder (en, ja)" in result.output


def test_lint_of_a_missing_template_fails(sg_cli_env: Path) -> None:
    result = runner.invoke(app, ["lint", "no_such_template"])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_preview_writes_html_and_text_and_prints_the_paths(sg_cli_env: Path) -> None:
    result = runner.invoke(app, ["preview", "renewal_reminder", "--locale", "en"])
    assert result.exit_code == 0, result.output
    html = sg_cli_env / "var" / "previews" / "renewal_reminder.en.sample.html"
    assert str(html) in result.output and "renews on" in html.read_text(encoding="utf-8")
    assert html.with_suffix(".txt").read_text(encoding="utf-8").startswith("Subject: Your Kizuna Analytics")


def test_preview_for_a_customer_reads_the_marts(sg_cli_env: Path, sg_make_warehouse: SgWarehouse) -> None:
    assert runner.invoke(app, ["preview", "renewal_reminder", "--customer", "C-000002"]).exit_code == 1  # no warehouse
    sg_make_warehouse(3, names={2: "株式会社　プレビュー商事"})
    result = runner.invoke(app, ["preview", "renewal_reminder", "--customer", "C-000002"])
    assert result.exit_code == 0, result.output
    html = (sg_cli_env / "var" / "previews" / "renewal_reminder.ja.C-000002.html").read_text(encoding="utf-8")
    assert "株式会社プレビュー商事" in html and "山田 2 様" in html
    assert runner.invoke(app, ["preview", "renewal_reminder", "--customer", "C-999"]).exit_code == 1


def test_send_test_goes_through_the_configured_backend_with_its_own_key(
    sg_cli_env: Path, sendgrid_standin: SendGridStandin
) -> None:
    result = runner.invoke(app, ["preview", "renewal_reminder", "--send-test", "marketer@example.co.jp"])
    assert result.exit_code == 0, result.output
    [sent] = sendgrid_standin.state.accepted
    assert sent.to_emails == ["marketer@example.co.jp"] and sent.custom_args["send_id"].startswith("test-")
    assert "test" in sent.body["categories"] and not Path(Settings().warehouse).exists()


def test_lint_of_a_misspelt_filter_prints_one_line_not_a_traceback(
    sg_cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`customer_name|compnay`: one line naming file, line and filter, the other templates still checked."""
    project = sg_cli_env / "project"
    shutil.copytree(PROJECT_DIR / "templates", project / "templates")
    body = project / "templates" / "renewal_reminder" / "body.ja.html.j2"
    body.write_text(body.read_text(encoding="utf-8").replace("customer_name|company", "customer_name|compnay"))
    monkeypatch.setenv("KIZUNA_PROJECT_DIR", str(project))
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output  # not a crash
    assert "Traceback" not in result.output
    problem_lines = [line for line in result.output.splitlines() if "compnay" in line]
    assert problem_lines == ["    renewal_reminder/body.ja.html.j2, line 17: syntax error: No filter named 'compnay'."]
    assert "✓ renewal_reminder" not in result.output and "✓ winback (en, ja)" in result.output


def test_shipped_templates_lint_clean_against_a_demo_warehouse(
    sg_cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a demo run the shipped tree lints clean: owner_digest's variables (campaign, description,
    accounts) are the digest's, not customer columns. A variable no selection gives is still flagged."""
    from tests.reporting.demo_warehouse import demo_warehouse

    monkeypatch.setenv("KIZUNA_WAREHOUSE", str(demo_warehouse()))  # the session's shared one, read only
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 0, result.output
    assert "✓ owner_digest (en, ja)" in result.output and "no warehouse selection" not in result.output

    project = sg_cli_env / "project"
    shutil.copytree(PROJECT_DIR / "templates", project / "templates")
    meta = project / "templates" / "winback" / "meta.yml"
    text = meta.read_text(encoding="utf-8")
    text = text.replace("variables:\n", "variables:\n  - loyalty_nickname\n", 1)
    meta.write_text(text.replace("sample_context:\n", "sample_context:\n  loyalty_nickname: ゴールド\n", 1))
    monkeypatch.setenv("KIZUNA_PROJECT_DIR", str(project))
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == 1
    assert (
        "    winback/meta.yml: variables ['loyalty_nickname'] are not columns of ops.campaign_recipients or of "
        "marts.customers; a campaign cannot fill them"
    ) in result.output.splitlines()
    assert "✓ owner_digest (en, ja)" in result.output


def test_lint_warns_when_html_and_text_differ_and_strict_fails(
    sg_cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The text version still says the renewal is in 30 days after the HTML was changed to 38."""
    project = sg_cli_env / "project"
    shutil.copytree(PROJECT_DIR / "templates", project / "templates")
    text = project / "templates" / "renewal_reminder" / "body.ja.txt.j2"
    text.write_text(text.read_text(encoding="utf-8").replace("（残り{{ days_to_renewal }}日）", "（残り30日）"))
    monkeypatch.setenv("KIZUNA_PROJECT_DIR", str(project))
    result = runner.invoke(app, ["lint", "renewal_reminder"])
    assert result.exit_code == 0, result.output
    assert "✓ renewal_reminder (en, ja)" in result.output
    [warning] = [line for line in result.output.splitlines() if "warning:" in line]
    assert warning.startswith(
        "    warning: renewal_reminder/body.ja.html.j2 and body.ja.txt.j2: a sentence differs: the HTML says “"
    )
    assert "契約更新日を迎えます（残り38日）。”, the text version “" in warning  # cut to show the change
    assert warning.endswith("契約更新日を迎えます（残り30日）。”")
    strict = runner.invoke(app, ["lint", "renewal_reminder", "--strict"])
    assert strict.exit_code == 1 and "✗ renewal_reminder" in strict.output

"""The studio's JSON API through its ASGI app (no browser): what the page is given for a broken template."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from kizuna.core.settings import PROJECT_DIR, Settings
from kizuna.studio.app import create_app


@pytest.fixture
def project(tmp_path: Path) -> Settings:
    """A copy of the shipped templates and campaigns, no warehouse (samples are meta.yml's sample_context)."""
    for folder in ("templates", "campaigns"):
        shutil.copytree(PROJECT_DIR / folder, tmp_path / "project" / folder)
    return Settings(
        project_dir=tmp_path / "project",
        warehouse=tmp_path / "no-warehouse.duckdb",
        var_dir=tmp_path / "var",
        outbox_dir=tmp_path / "outbox",
        email_backend="outbox",
    )


def test_a_misspelt_filter_is_shown_for_the_template_being_edited(project: Settings) -> None:
    """`customer_name|compnay`: the answer names this template and its error, with no email to show."""
    body = project.templates_dir / "renewal_reminder" / "body.ja.html.j2"
    body.write_text(body.read_text(encoding="utf-8").replace("customer_name|company", "customer_name|compnay"))
    client = TestClient(create_app(project), base_url="http://127.0.0.1")
    answer = client.get("/api/render", params={"template": "renewal_reminder", "locale": "ja", "sample": "sample"})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["template"] == "renewal_reminder"
    assert "renewal_reminder/body.ja.html.j2, line 17: syntax error: No filter named 'compnay'." in [
        data["error"],
        *data["lint"],
    ]
    assert data["error"] and (data["subject"], data["html"], data["text"]) == ("", "", "")
    # The other templates still render and lint clean.
    other = client.get("/api/render", params={"template": "winback", "locale": "ja", "sample": "sample"}).json()
    assert other["template"] == "winback" and other["error"] is None and other["lint"] == [] and other["html"]


def test_html_and_text_saying_different_things_is_a_warning_in_the_studio(project: Settings) -> None:
    text = project.templates_dir / "renewal_reminder" / "body.ja.txt.j2"
    text.write_text(text.read_text(encoding="utf-8").replace("（残り{{ days_to_renewal }}日）", "（残り30日）"))
    client = TestClient(create_app(project), base_url="http://127.0.0.1")
    data = client.get("/api/render", params={"template": "renewal_reminder", "locale": "ja"}).json()
    assert data["error"] is None and data["lint"] == [] and data["html"]
    [warning] = data["warnings"]
    assert "a sentence differs" in warning and "（残り30日）" in warning


def test_the_reload_fingerprint_does_not_follow_links(project: Settings) -> None:
    """A link to /proc or a dangling one (an editor's lock file) neither fails the poll nor is read."""
    from kizuna.studio.app import templates_version

    before = templates_version(project.templates_dir)
    (project.templates_dir / "winback" / "proc").symlink_to("/proc")
    (project.templates_dir / "winback" / ".#body.ja.html.j2").symlink_to("/nonexistent/lock")
    (project.templates_dir / "winback" / "gone.txt").symlink_to(project.templates_dir / "no-such-file")
    after = templates_version(project.templates_dir)
    assert after != before  # new entries count, by their own mtime and size
    client = TestClient(create_app(project), base_url="http://127.0.0.1")
    assert client.get("/api/version").json() == {"version": after}

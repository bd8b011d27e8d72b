"""One renderer per process for a day's campaigns, and a new one as soon as a template file changes."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import SecretStr

from kizuna.campaigns.run import shared_renderer
from kizuna.core.settings import PROJECT_DIR, Settings


def _project(tmp_path: Path) -> Settings:
    shutil.copytree(PROJECT_DIR / "templates", tmp_path / "templates")
    return Settings(project_dir=tmp_path, var_dir=tmp_path / "var")


def test_campaigns_share_one_renderer_until_a_template_file_changes(tmp_path: Path) -> None:
    settings = _project(tmp_path)
    first = shared_renderer(settings)
    assert shared_renderer(settings) is first  # the next campaign finds the layouts compiled, CSS inlined
    assert "EDITED" not in first.render_sample("renewal_reminder", "ja").subject

    subject = tmp_path / "templates" / "renewal_reminder" / "subject.ja.txt.j2"
    subject.write_text(subject.read_text(encoding="utf-8").strip() + " EDITED\n", encoding="utf-8")
    edited = shared_renderer(settings)
    assert edited is not first
    assert edited.render_sample("renewal_reminder", "ja").subject.endswith("EDITED")  # at once, not in 2 s

    (tmp_path / "templates" / "renewal_reminder" / "notes.txt").write_text("a new file\n", encoding="utf-8")
    assert shared_renderer(settings) is not edited


def test_other_sender_settings_get_their_own_renderer(tmp_path: Path) -> None:
    settings = _project(tmp_path)
    renderer = shared_renderer(settings)
    other_secret = settings.model_copy(update={"unsubscribe_secret": SecretStr("another-secret-of-enough-length")})
    other_sender = settings.model_copy(update={"sender_name": "Another K.K."})
    assert shared_renderer(other_secret) is not renderer
    assert shared_renderer(other_sender).sender.name == "Another K.K."
    assert shared_renderer(settings) is renderer

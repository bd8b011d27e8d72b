"""Fixtures for the email tests: a renderer on the shipped templates and one on scratch templates."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from kizuna.core.settings import PROJECT_DIR
from kizuna.email.render import Sender, TemplateRenderer
from tests.standins.sendgrid_server import sendgrid_standin  # noqa: F401 (a fixture)

TEMPLATES_DIR = PROJECT_DIR / "templates"
# Distinct from the settings defaults, so a test sees values that came through the renderer.
SENDER = Sender(
    name="株式会社テスト送信 (Test Sender K.K.)",
    email="cs@sender.example.jp",
    postal_address="〒150-0002 東京都渋谷区渋谷2-2-2 テストビル5F",
    contact="help@sender.example.jp / 03-1111-2222",
)
UNSUBSCRIBE_URL = "https://sender.example.jp/optout?t={contact_token}"

MakeRenderer = Callable[[dict[str, str]], TemplateRenderer]


@pytest.fixture(scope="session")
def renderer() -> TemplateRenderer:
    return TemplateRenderer(TEMPLATES_DIR, SENDER, UNSUBSCRIBE_URL)


@pytest.fixture
def make_renderer(tmp_path: Path) -> MakeRenderer:
    """A renderer on a scratch templates dir: the shipped _layouts plus the files given (path → text)."""

    def make(files: dict[str, str]) -> TemplateRenderer:
        root = tmp_path / "templates"
        if not root.exists():
            shutil.copytree(TEMPLATES_DIR / "_layouts", root / "_layouts")
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return TemplateRenderer(root, SENDER, UNSUBSCRIBE_URL, reload_seconds=0)

    return make


def scratch_template(
    html_content: str = "<p>{{ greeting }}</p>",
    *,
    subject: str = "件名 {{ greeting }}",
    text_content: str = "{{ greeting }}",
    variables: str = "[greeting]",
    sample: str = "{greeting: こんにちは, contact_id: P-1}",
    html_extra: str = "",
) -> dict[str, str]:
    """Files of a one-locale (ja) template folder named 'scratch'."""
    return {
        "scratch/meta.yml": f"description: scratch\nvariables: {variables}\nsample_context: {sample}\n",
        "scratch/subject.ja.txt.j2": subject,
        "scratch/body.ja.html.j2": '{% extends "_layouts/base.html.j2" %}\n'
        + html_extra
        + f"{{% block content %}}{html_content}{{% endblock %}}\n",
        "scratch/body.ja.txt.j2": '{% extends "_layouts/base.txt.j2" %}\n'
        + f"{{% block content %}}{text_content}{{% endblock %}}\n",
    }

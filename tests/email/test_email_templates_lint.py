"""Every shipped template renders in every locale it ships, from its own sample_context (→ kizuna templates lint)."""

from __future__ import annotations

import pytest
from conftest import TEMPLATES_DIR, MakeRenderer, scratch_template

from kizuna.email.render import TemplateRenderer
from kizuna.settings import Settings

_RENDERER = TemplateRenderer.from_settings(Settings(project_dir=TEMPLATES_DIR.parent))
SHIPPED = [(t, loc) for t in _RENDERER.templates() for loc in _RENDERER.locales(t)]


def test_templates_are_found() -> None:
    assert ("renewal_reminder", "ja") in SHIPPED and ("renewal_reminder", "en") in SHIPPED


@pytest.mark.parametrize(("template", "locale"), SHIPPED, ids=[f"{t}-{loc}" for t, loc in SHIPPED])
def test_shipped_template_renders_its_sample(renderer: TemplateRenderer, template: str, locale: str) -> None:
    email = renderer.render_sample(template, locale)
    assert email.locale == locale and email.subject and email.text.strip() and "<style" not in email.html


@pytest.mark.parametrize("template", _RENDERER.templates())
def test_shipped_template_lints_clean(renderer: TemplateRenderer, template: str) -> None:
    assert renderer.lint(template) == []


def test_lint_reports_undeclared_variables_and_incomplete_meta(make_renderer: MakeRenderer) -> None:
    files = scratch_template("<p>{{ greeting }} {{ secret_column }}</p>")
    renderer = make_renderer(files)
    problems = renderer.lint("scratch")
    assert any("secret_column" in p and "not declared" in p for p in problems)

    files["scratch/meta.yml"] = "description: x\nvariables: [greeting]\nsample_context: {}\n"
    assert "sample_context lacks declared variables ['greeting']" in " ".join(make_renderer(files).lint("scratch"))


@pytest.mark.parametrize(
    "expression", ["''.__class__.__mro__", "greeting.format_map.__globals__"], ids=["mro", "globals"]
)
def test_lint_reports_a_template_reaching_python_internals(make_renderer: MakeRenderer, expression: str) -> None:
    problems = make_renderer(scratch_template(f"<p>{{{{ {expression} }}}}</p>")).lint("scratch")
    assert any("not allowed in email templates" in p for p in problems)

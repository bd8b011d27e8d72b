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


def test_a_misspelt_filter_is_one_problem_naming_file_and_line(make_renderer: MakeRenderer) -> None:
    """A marketer's typo (`company` spelt `compnay`) is a lint problem, not a traceback out of the lint."""
    renderer = make_renderer(scratch_template("<p>{{ greeting }}</p>\n<p>{{ greeting|compnay }}</p>"))
    problems = renderer.lint("scratch")
    assert problems == ["scratch/body.ja.html.j2, line 3: syntax error: No filter named 'compnay'."]


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("ja", "scratch/body.ja.html.j2, line 3: syntax error: 3行目の {% if %} が閉じられていません"),
        ("en", "scratch/body.en.html.j2, line 3: syntax error: the {% if %} on line 3 is never closed"),
    ],
    ids=["ja", "en"],
)
def test_an_unclosed_if_is_reported_once_at_its_opening_tag(
    make_renderer: MakeRenderer, locale: str, expected: str
) -> None:
    files = {
        name.replace(".ja.", f".{locale}."): text
        for name, text in scratch_template("<p>{{ greeting }}</p>\n{% if greeting %}\n<p>ok</p>\n\n\n").items()
    }
    files["scratch/meta.yml"] += f"default_locale: {locale}\n"
    problems = make_renderer(files).lint("scratch")
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems
    assert "{% endif %}" in problems[0] and (
        "endblock %} on line 7" in problems[0] or "7行目の {% endblock %}" in problems[0]
    )

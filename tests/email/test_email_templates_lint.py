"""Every shipped template renders in every locale it ships, from its own sample_context (→ kizuna templates lint)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TEMPLATES_DIR, MakeRenderer, scratch_template

from kizuna.core.settings import Settings
from kizuna.email.render import OutsideTemplatesError, TemplateRenderer

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


SECRET = "KIZUNA_SENDGRID_API_KEY=SG.not-for-customers"


@pytest.mark.parametrize(
    ("link", "target", "html"),
    [
        ("scratch/notes.txt", "env", '<p>{{ greeting }}</p>{% include "scratch/notes.txt" %}'),
        ("_layouts/footer.html.j2", "env", "<p>{{ greeting }}</p>"),
        ("scratch/parts", "dir", '<p>{{ greeting }}</p>{% include "scratch/parts/.env" %}'),
        ("scratch/environ.txt", "/proc/self/environ", '<p>{{ greeting }}</p>{% include "scratch/environ.txt" %}'),
        ("scratch/meta.yml", "meta", "<p>{{ greeting }}</p>"),
        ("scratch/unused.txt", "/etc/hostname", "<p>{{ greeting }}</p>"),
    ],
    ids=["include-env", "layout-footer", "linked-folder", "proc-environ", "meta-yml", "unused-link"],
)
def test_a_link_leading_outside_templates_is_refused_at_lint_and_render(
    make_renderer: MakeRenderer, tmp_path: Path, link: str, target: str, html: str
) -> None:
    """A symlink inside templates/ to a .env, /etc or /proc: never read, named by lint, refused at render."""
    (tmp_path / ".env").write_text(SECRET + "\n", encoding="utf-8")
    (tmp_path / "elsewhere.yml").write_text(
        f"description: x\nvariables: [greeting]\nsample_context: {{greeting: '{SECRET}', contact_id: P-1}}\n"
    )
    renderer = make_renderer(scratch_template(html))
    path = tmp_path / "templates" / link
    path.unlink(missing_ok=True)
    points_to = {"env": tmp_path / ".env", "dir": tmp_path, "meta": tmp_path / "elsewhere.yml"}.get(target)
    path.symlink_to(points_to or Path(target))

    problems = renderer.lint("scratch")
    assert problems, "lint reported nothing"
    assert any(link.split("/", 1)[1] in p and "outside templates/" in p for p in problems), problems
    assert not any("SG." in p for p in problems)
    if target != "/etc/hostname":  # an unused link is harmless to a render, but lint still names it
        with pytest.raises(OutsideTemplatesError) as refused:
            renderer.render_sample("scratch", "ja")
        assert "SG." not in str(refused.value)


def test_a_link_inside_templates_is_fine(make_renderer: MakeRenderer, tmp_path: Path) -> None:
    renderer = make_renderer(scratch_template('<p>{{ greeting }}</p>{% include "scratch/shared.txt" %}'))
    (tmp_path / "templates" / "_layouts" / "shared.txt").write_text("<p>共通の一文です。</p>", encoding="utf-8")
    (tmp_path / "templates" / "scratch" / "shared.txt").symlink_to(tmp_path / "templates" / "_layouts" / "shared.txt")
    assert renderer.lint("scratch") == []
    assert "共通の一文です。" in renderer.render_sample("scratch", "ja").html


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (
            "<p>{{ greeting }}</p>\n{% for x in [1] %}\n{% if x %}{{ x }}{% endif %}\n",
            "line 3: syntax error: 3行目の {% for %} が閉じられていません。5行目の {% endblock %} より前に {% endfor %}",
        ),
        (
            "<p>{{ greeting }}</p>\n{% set note %}\n<p>x</p>\n",
            "line 3: syntax error: 3行目の {% set %} が閉じられていません",
        ),
        (
            "<p>{{ greeting }}</p>\n{% set y = 1 %}{% if y %}\n{% for x in [1] %}{{ x }}{% endfor %}\n",
            "line 3: syntax error: 3行目の {% if %} が閉じられていません",
        ),
    ],
    ids=["for", "block-set", "if-after-a-one-line-set"],
)
def test_the_unclosed_tag_is_found_among_others(make_renderer: MakeRenderer, html: str, expected: str) -> None:
    [problem] = make_renderer(scratch_template(html)).lint("scratch")
    assert problem.startswith(f"scratch/body.ja.html.j2, {expected}"), problem

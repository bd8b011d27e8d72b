"""Rendering is bounded: loops, string sizes and time per message, each with a clear error (kizuna.email.limits)."""

from __future__ import annotations

import time

import pytest
from conftest import SENDER, UNSUBSCRIBE_URL, MakeRenderer, scratch_template

from kizuna.core.settings import Settings
from kizuna.email.limits import RenderLimits
from kizuna.email.render import TemplateLimitError, TemplateRenderer

# What a marketer (or someone trying) can write that used to keep lint at 100% CPU or allocate gigabytes.
RUNAWAY = [
    (
        "{% for i in range(100000) %}{% for j in range(100000) %}.{% endfor %}{% endfor %}",
        "loops ran more than 100,000 times for one message (KIZUNA_TEMPLATE_MAX_LOOP_ITERATIONS)",
    ),
    ("{{ 'x' * 300000000 }}", "300,000,000 characters or items, over the limit of 1,000,000"),
    ("{{ ['x'] * 300000000 }}", "over the limit of 1,000,000 (KIZUNA_TEMPLATE_MAX_TEXT_CHARS)"),
    ("{{ 'x'|center(300000000) }}", "the filter center was given 300,000,000"),
    ("{{ 'x'.ljust(300000000) }}", "the string method ljust was given 300,000,000"),
    ("{{ '%300000000s'|format('x') }}", "the filter format has a width of 300000000"),
    ("{{ '%300000000s' % 'x' }}", "a %-format has a width of 300000000"),
    ("{{ '{:>300000000}'.format('x') }}", "the string method format has a width of 300000000"),
    ("{{ ('x' * 999999)|replace('', 'yy') }}", "the filter replace would be"),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "a `~` join would be 1,048,576 characters",
    ),
    ("{{ 9 ** 99999999 }}", "too large a number"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("body", "message"),
    RUNAWAY,
    ids=[
        "nested-range",
        "str-times",
        "list-times",
        "center",
        "ljust",
        "format-filter",
        "percent-format",
        "str-format",
        "replace",
        "doubling-join",
        "power",
    ],
)
def test_a_runaway_template_stops_with_a_clear_error(make_renderer: MakeRenderer, body: str, message: str) -> None:
    renderer = make_renderer(scratch_template(f"<p>{{{{ greeting }}}}</p>\n{body}"))
    started = time.monotonic()
    problems = renderer.lint("scratch")
    assert time.monotonic() - started < 10
    assert len(problems) == 1, problems
    assert problems[0].startswith("scratch/body.ja.html.j2, line 3: "), problems
    assert message in problems[0], problems
    with pytest.raises(TemplateLimitError):
        renderer.render_sample("scratch", "ja")


@pytest.mark.timeout(60)
def test_rendering_one_message_is_bounded_in_time(make_renderer: MakeRenderer) -> None:
    """Exponential macro recursion: few loop steps, little text, but it would run for hours."""
    body = "{% macro twice(n) %}{% if n %}{{ twice(n - 1) }}{{ twice(n - 1) }}{% endif %}{% endmacro %}{{ twice(40) }}"
    root = make_renderer(scratch_template(f"<p>{{{{ greeting }}}}</p>\n{body}")).templates_dir
    renderer = TemplateRenderer(root, SENDER, UNSUBSCRIBE_URL, reload_seconds=0, limits=RenderLimits(max_seconds=0.5))
    started = time.monotonic()
    with pytest.raises(TemplateLimitError, match=r"longer than 0\.5 s for one message \(KIZUNA_TEMPLATE_RENDER"):
        renderer.render_sample("scratch", "ja")
    assert time.monotonic() - started < 5
    # The budget is per message: the next message starts afresh (and fails the same way, not at once).
    started = time.monotonic()
    with pytest.raises(TemplateLimitError):
        renderer.render_sample("scratch", "ja")
    assert 0.4 < time.monotonic() - started < 5


def test_limits_come_from_settings(make_renderer: MakeRenderer) -> None:
    root = make_renderer(scratch_template("<p>{{ greeting }}</p>{% for i in range(10) %}<i>{{ i }}</i>{% endfor %}"))
    settings = Settings(project_dir=root.templates_dir.parent, template_max_loop_iterations=9)
    renderer = TemplateRenderer.from_settings(settings)
    with pytest.raises(TemplateLimitError, match="more than 9 times"):
        renderer.render_sample("scratch", "ja")
    settings = Settings(project_dir=root.templates_dir.parent, template_max_loop_iterations=10)
    assert "<i>9</i>" in TemplateRenderer.from_settings(settings).render_sample("scratch", "ja").html


def test_loops_still_behave_as_jinja_loops(make_renderer: MakeRenderer) -> None:
    """loop.index/length/last, else, filtered and recursive loops work through the loop budget."""
    body = (
        "{% for x in items if x > 1 %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}"
        "{% else %}none{% endfor %}|{% for n in tree recursive %}{{ n.name }}{{ loop(n.kids) }}{% endfor %}"
        "|{% for k, v in pairs|dictsort %}{{ k }}={{ v }}{% endfor %}|{{ 'a' ~ 'b' }}"
    )
    sample = (
        "{greeting: hi, contact_id: P-1, items: [1, 2, 3], pairs: {b: 2, a: 1},"
        " tree: [{name: A, kids: [{name: B, kids: []}]}]}"
    )
    files = scratch_template(f"<p>{{{{ greeting }}}}</p><p>{body}</p>", sample=sample)
    files["scratch/meta.yml"] = files["scratch/meta.yml"].replace("variables: [greeting]", "variables: []")
    renderer = make_renderer(files)
    assert "1/2,2/2|AB|a=1b=2|ab" in renderer.render_sample("scratch", "ja").html


def test_large_numbers_that_build_nothing_are_fine(make_renderer: MakeRenderer) -> None:
    """A price default over the text limit, an ID in a format string: ordinary values, not runaway widths."""
    body = (
        "<p>{{ missing_price|default(1500000, true)|yen }} {{ 'ID 12345678: %s' % greeting }} "
        "{{ 'No. {} (ref 987654321)'.format(greeting) }} {{ '%08d'|format(42) }} {{ 2 ** 20 }}</p>"
    )
    files = scratch_template(f"<p>{{{{ greeting }}}}</p>{body}")
    files["scratch/meta.yml"] = files["scratch/meta.yml"].replace(
        "contact_id: P-1", "contact_id: P-1, missing_price: null"
    )
    html = make_renderer(files).render_sample("scratch", "ja").html
    for shown in ("¥1,500,000", "ID 12345678: こんにちは", "No. こんにちは (ref 987654321)", "00000042", "1048576"):
        assert shown in html

"""Inlining CSS before rendering: flattening layouts, making row groups explicit, refusing what is unsafe."""

from __future__ import annotations

import css_inline
import pytest

from kizuna.email.inlining import InlineOnceUnsafe, explicit_tbody, flatten, inline_source, same_html

INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<table>{% for %}<tr></tr>{% endfor %}</table>", "<table><tbody>{% for %}<tr></tr>{% endfor %}</tbody></table>"),
        ("<table><tbody><tr></tr></tbody></table>", "<table><tbody><tr></tr></tbody></table>"),
        (
            "<table><thead><tr></tr></thead>{% for %}<tr></tr>{% endfor %}</table>",
            "<table><thead><tr></tr></thead><tbody>{% for %}<tr></tr>{% endfor %}</tbody></table>",
        ),
        (
            "<table><tr><td><table><tr></tr></table></td></tr></table>",
            "<table><tbody><tr><td><table><tbody><tr></tr></tbody></table></td></tr></tbody></table>",
        ),
    ],
    ids=["bare-rows", "explicit", "after-thead", "nested"],
)  # fmt: skip
def test_explicit_tbody(html: str, expected: str) -> None:
    assert explicit_tbody(html) == expected


def test_flatten_resolves_layout_blocks_and_includes() -> None:
    sources = {
        "base": "<body>{% block a %}A{% endblock %}|{% include 'foot' %}|{% block b %}B{% endblock %}</body>",
        "foot": "FOOT",
        "child": "{# note #}\n{% extends 'base' %}\n{% block b %}child-b{% endblock %}\n{% block unused %}x{% endblock %}",
    }
    assert (
        flatten(sources.__getitem__, "child")
        == "<body>{% block a %}A{% endblock %}|FOOT|{% block b %}child-b{% endblock %}</body>"
    )


@pytest.mark.parametrize(
    "child",
    [
        "{% extends 'base' %}{% block a %}{{ super() }}{% endblock %}",
        "{% extends 'base' %}{% set x = 1 %}{% block a %}{% endblock %}",
        "{% extends 'base' %}{% block a %}{% include name %}{% endblock %}",
        "{% extends 'base' %}{% block a %}{% raw %}{{ }}{% endraw %}{% endblock %}",
    ],
    ids=["super", "content-outside-blocks", "dynamic-include", "raw"],
)
def test_flatten_refuses_what_it_cannot_resolve(child: str) -> None:
    sources = {"base": "<p>{% block a %}{% endblock %}</p>", "child": child}
    with pytest.raises(InlineOnceUnsafe):
        flatten(sources.__getitem__, "child")


@pytest.mark.parametrize(
    "html",
    [
        "<style>p { color: {{ colour }}; }</style><p>x</p>",
        '<style>.a { color: red; }</style><p class="{{ cls }}">x</p>',
        '<style>p { color: red; }</style><p style="{{ css }}">x</p>',
        "<style>p { color: red; }</style><p {% if x %}hidden{% endif %}>x</p>",
        "<style>p { color: red; }</style><div><p>x</div>",
    ],
    ids=["in-style", "in-class", "in-style-attribute", "in-start-tag", "unclosed-element"],
)
def test_unsafe_sources_are_refused(html: str) -> None:
    with pytest.raises(InlineOnceUnsafe):
        inline_source(INLINER, f"<html><head></head><body>{html}</body></html>")


def test_inline_source_keeps_jinja_in_text_and_attributes() -> None:
    source = '<html><head><style>a { color: red; }</style></head><body><a href="{{ url }}">{{ t }}</a></body></html>'
    assert '<a href="{{ url }}" style="color: red;">{{ t }}</a>' in inline_source(INLINER, source)


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ("<p>a  b</p>", "<p>a b</p>", True),
        ("<p>&#39;</p>", "<p>'</p>", True),
        ("<p>a</p>", "<p>b</p>", False),
        ('<p class="x">a</p>', "<p>a</p>", False),
    ],
    ids=["whitespace", "escaping", "text", "attribute"],
)
def test_same_html(left: str, right: str, same: bool) -> None:
    assert same_html(left, right) is same

"""Lint warns when a locale's HTML and text versions say different things (links, a changed sentence)."""

from __future__ import annotations

import pytest
from conftest import MakeRenderer, scratch_template

from kizuna.email.render import TemplateRenderer

HTML = (
    "<p>{{ greeting }}</p>\n"
    '<p class="lead">ご契約は2026年12月31日に更新日を迎えます（残り38日）。<br>'
    "現在のご契約内容は以下のとおりです。</p>\n"
    "<ul><li>月額ご利用料金：¥80,000</li><li>契約期間：12か月</li></ul>\n"
    '<p>詳しくは<a href="https://example.co.jp/renewal">更新のご案内ページ</a>をご覧ください。</p>\n'
    '<p>Questions? Write to <a href="mailto:team@example.co.jp">team@example.co.jp</a>. We reply within a day.</p>'
)
# The same content as a marketer writes the text version: other line breaks, list marks, the URL on its own line.
TEXT = (
    "{{ greeting }}\n\n"
    "ご契約は2026年12月31日に更新日を迎えます（残り38日）。\n"
    "現在のご契約内容は以下のとおりです。\n\n"
    "■ 月額ご利用料金：¥80,000\n"
    "■ 契約期間：12か月\n\n"
    "詳しくは更新のご案内ページをご覧ください。\n"
    "https://example.co.jp/renewal\n\n"
    "Questions? Write to team@example.co.jp.\nWe reply within a day."
)


def warnings_for(make_renderer: MakeRenderer, html: str, text: str) -> list[str]:
    return make_renderer(scratch_template(html, text_content=text)).lint_warnings("scratch")


def test_the_same_content_written_twice_is_not_warned_about(make_renderer: MakeRenderer) -> None:
    assert warnings_for(make_renderer, HTML, TEXT) == []


@pytest.mark.parametrize(
    ("html", "text", "expected"),
    [
        (
            HTML,
            TEXT.replace("残り38日", "残り30日"),
            "a sentence differs: the HTML says “ご契約は2026年12月31日に更新日を迎えます（残り38日）。”, "
            "the text version “ご契約は2026年12月31日に更新日を迎えます（残り30日）。”",
        ),
        (
            HTML.replace("¥80,000", "¥90,000"),
            TEXT,
            "a sentence differs: the HTML says “月額ご利用料金：¥90,000”, the text version “月額ご利用料金：¥80,000”",
        ),
        (
            HTML,
            TEXT.replace("https://example.co.jp/renewal", "https://example.co.jp/old-renewal"),
            "the HTML links to https://example.co.jp/renewal, which the text version does not show",
        ),
        (
            HTML,
            TEXT.replace("https://example.co.jp/renewal", "https://example.co.jp/old-renewal"),
            "the text version shows https://example.co.jp/old-renewal, which the HTML does not link to",
        ),
        (
            HTML.replace("mailto:team@", "mailto:sales@"),
            TEXT,
            "the HTML links to sales@example.co.jp, which the text version does not show",
        ),
        (
            HTML + "<p>今月末までにご返信いただいた方には特典がございます。</p>",
            TEXT,
            "only the HTML says “今月末までにご返信いただいた方には特典がございます。”",
        ),
    ],
    ids=["changed-number", "changed-list-item", "link-missing-in-text", "url-missing-in-html", "mailto", "extra"],
)
def test_html_and_text_saying_different_things_is_warned_about(
    make_renderer: MakeRenderer, html: str, text: str, expected: str
) -> None:
    warnings = warnings_for(make_renderer, html, text)
    assert f"scratch/body.ja.html.j2 and body.ja.txt.j2: {expected}" in warnings, warnings


def test_a_warning_is_not_a_lint_problem(make_renderer: MakeRenderer) -> None:
    renderer = make_renderer(scratch_template(HTML, text_content=TEXT.replace("38", "30")))
    assert renderer.lint("scratch") == [] and renderer.lint_warnings("scratch")


def test_shipped_templates_say_the_same_in_html_and_text(renderer: TemplateRenderer) -> None:
    assert {t: renderer.lint_warnings(t) for t in renderer.templates()} == {t: [] for t in renderer.templates()}

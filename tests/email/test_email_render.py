"""Rendering: the shipped renewal_reminder, escaping, strict variables, the sandbox, subjects, CSS inlining."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from conftest import SENDER, UNSUBSCRIBE_URL, MakeRenderer, scratch_template
from jinja2.sandbox import SecurityError

from kizuna.email.inlining import same_html
from kizuna.email.render import (
    ComplianceError,
    EmailTemplateError,
    EmptyBodyError,
    InvalidSubjectError,
    MissingVariableError,
    TemplateRenderer,
    TemplateSourceError,
    UnsafeTemplateError,
)

TEMPLATE = "renewal_reminder"


def sample(renderer: TemplateRenderer, **changes: Any) -> dict[str, Any]:
    return {**renderer.meta(TEMPLATE).sample_context, **changes}


def assert_footer(body: str, unsubscribe_url: str) -> None:
    for value in (SENDER.name, SENDER.postal_address, SENDER.contact, unsubscribe_url):
        assert value in body


def test_renewal_reminder_ja(renderer: TemplateRenderer) -> None:
    email = renderer.render(TEMPLATE, "ja", sample(renderer))

    assert email.locale == "ja"
    assert email.subject == "【Kizuna Analytics】契約更新のご案内（2026年12月31日更新）"
    url = "https://sender.example.jp/optout?t=P-004567"
    assert email.unsubscribe_url == url
    for body in (email.html, email.text):
        assert "株式会社みらい物産" in body  # full-width space normalised by |company
        assert "山田 太郎 様" in body
        assert "¥80,000" in body
        assert "2026年12月31日（木）" in body
        assert "12か月" in body
        assert "account-team@example.co.jp" in body
        assert "配信を停止" in body  # the opt-out statement next to the link
    link = re.search(r'<a href="([^"]+)"[^>]*>配信停止の手続き</a>', email.html)
    assert link is not None and link.group(1) == url
    assert_footer(email.html.replace("&amp;", "&"), url)
    assert_footer(email.text, url)
    assert email.categories == ("renewal_reminder",)
    assert email.unsubscribe_group is None
    assert (email.from_name, email.from_email, email.reply_to) == (SENDER.name, SENDER.email, None)


def test_renewal_reminder_en(renderer: TemplateRenderer) -> None:
    email = renderer.render(TEMPLATE, "en", sample(renderer, locale="en"))

    assert email.locale == "en"
    assert email.subject == "Your Kizuna Analytics contract renews on December 31, 2026"
    for body in (email.html, email.text):
        assert "Dear 山田 太郎," in body
        assert "¥80,000" in body
        assert "Thursday, December 31, 2026" in body
        assert "opt out" in body
    assert_footer(email.text, email.unsubscribe_url)
    assert_footer(email.html, email.unsubscribe_url)
    assert '<html lang="en">' in email.html


def test_html_is_css_inlined(renderer: TemplateRenderer) -> None:
    html = renderer.render(TEMPLATE, "ja", sample(renderer)).html

    assert "<style" not in html
    assert 'class="summary"' in html and "border-collapse: collapse" in html
    assert html.count('style="') > 20
    assert "{%" not in html and "{{" not in html and "kzj" not in html


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_inline_once_matches_inlining_each_message(renderer: TemplateRenderer, locale: str) -> None:
    per_message = TemplateRenderer(renderer.templates_dir, SENDER, UNSUBSCRIBE_URL, inline_once=False)
    context = sample(renderer, customer_name="A&B <株式会社>", contact_name="", owner_email="")

    assert renderer.css_strategy(TEMPLATE, locale) == "inline-once"
    fast = renderer.render(TEMPLATE, locale, context).html
    slow = per_message.render(TEMPLATE, locale, context).html
    assert same_html(fast, slow)


def test_fallbacks_for_empty_contact_and_owner(renderer: TemplateRenderer) -> None:
    ja = renderer.render(TEMPLATE, "ja", sample(renderer, contact_name="", owner_email=None))
    en = renderer.render(TEMPLATE, "en", sample(renderer, contact_name=None, owner_email=""))

    assert "ご担当者様" in ja.text and "下記のお問い合わせ窓口" in ja.text
    assert "mailto:" not in ja.html
    assert "Dear Customer," in en.text and "us at the address below" in en.text
    from_pandas = renderer.render(TEMPLATE, "ja", sample(renderer, contact_name=float("nan"), owner_email=float("nan")))
    assert from_pandas.text == ja.text  # NaN, pandas' empty cell, reads as empty


@pytest.mark.parametrize(("asked", "used"), [("ja", "ja"), ("en", "en"), ("en-US", "en"), ("fr", "ja")], ids=str)
def test_locale_falls_back_to_default(renderer: TemplateRenderer, asked: str, used: str) -> None:
    assert renderer.render(TEMPLATE, asked, sample(renderer)).locale == used


def test_html_autoescapes_text_does_not(renderer: TemplateRenderer) -> None:
    email = renderer.render(TEMPLATE, "ja", sample(renderer, customer_name="<script>alert(1)</script>"))

    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "<script>alert(1)</script>" in email.text  # plain text is not HTML: no entities


@pytest.mark.parametrize(
    ("contact_id", "in_url"),
    [("P 1&x=2", "P%201%26x%3D2"), ("顧客-1", "%E9%A1%A7%E5%AE%A2-1"), ("a.b_c~D-9", "a.b_c~D-9")],
    ids=["reserved", "non-ascii", "unreserved-as-is"],
)
def test_unsubscribe_token_is_url_quoted(renderer: TemplateRenderer, contact_id: str, in_url: str) -> None:
    email = renderer.render(TEMPLATE, "ja", sample(renderer, contact_id=contact_id))
    assert email.unsubscribe_url == f"https://sender.example.jp/optout?t={in_url}"


def test_missing_declared_variable_is_named(renderer: TemplateRenderer) -> None:
    context = sample(renderer)
    del context["plan"]
    with pytest.raises(MissingVariableError, match="plan") as caught:
        renderer.render(TEMPLATE, "ja", context)
    assert caught.value.variable == "plan"


def test_undefined_variable_names_variable_file_and_line(make_renderer: MakeRenderer) -> None:
    renderer = make_renderer(scratch_template("<p>{{ greeting }}</p>\n<p>{{ plan_name }}</p>"))
    with pytest.raises(MissingVariableError) as caught:
        renderer.render_sample("scratch", "ja")
    assert caught.value.variable == "plan_name"
    assert "scratch/body.ja.html.j2, line 3" in str(caught.value)


def test_syntax_error_names_file_and_line(make_renderer: MakeRenderer) -> None:
    renderer = make_renderer(scratch_template("<p>\n{% if greeting %}\n</p>"))
    with pytest.raises(TemplateSourceError, match=r"scratch/body\.ja\.html\.j2, line \d+: syntax error"):
        renderer.render_sample("scratch", "ja")


@pytest.mark.parametrize(
    "value",
    ["Kizuna\nBcc: victim@example.com", "Kizuna\r\nX: y", "Kizuna\x00", "Kizuna\u2028X"],
    ids=["lf", "crlf", "nul", "line-separator"],
)
def test_subject_must_be_one_line(renderer: TemplateRenderer, value: str) -> None:
    with pytest.raises(InvalidSubjectError, match="one line"):
        renderer.render(TEMPLATE, "ja", sample(renderer, product=value))


def test_subject_refuses_every_control_line_separator_and_bidi_character(make_renderer: MakeRenderer) -> None:
    renderer = make_renderer(scratch_template())
    bidi = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    refused = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) in ("Cc", "Zl", "Zp")] + list(bidi)
    allowed = ["\u3000", "\u00a0", "\u200d", "\u200b", "\ufeff", "🎉", "ｶﾀｶﾅ", "\u0301"]

    def accepted(ch: str) -> bool:
        try:
            renderer.render("scratch", "ja", {"greeting": f"ご案内{ch}です", "contact_id": "P-1"})
        except InvalidSubjectError:
            return False
        return True

    assert len(refused) == 76
    assert [f"U+{ord(ch):04X}" for ch in refused if accepted(ch)] == []
    assert [f"U+{ord(ch[0]):04X}" for ch in allowed if not accepted(ch)] == []


def test_subject_must_not_be_empty(make_renderer: MakeRenderer) -> None:
    renderer = make_renderer(scratch_template(subject="{{ '' }}  \n"))
    with pytest.raises(InvalidSubjectError, match="empty"):
        renderer.render_sample("scratch", "ja")


@pytest.mark.parametrize(
    ("html", "text"), [("  ", "本文"), ("<p>本文</p>", "{% if false %}x{% endif %}")], ids=["html", "text"]
)
def test_empty_body_is_an_error(make_renderer: MakeRenderer, html: str, text: str) -> None:
    renderer = make_renderer(scratch_template(html, text_content=text))
    with pytest.raises(EmptyBodyError):
        renderer.render_sample("scratch", "ja")


@pytest.mark.parametrize(
    "expression",
    ["''.__class__.__mro__", "greeting.__class__", "greeting.format_map.__globals__", "().__class__.__base__"],
    ids=["mro", "class", "globals", "base"],
)
def test_sandbox_blocks_private_attributes(make_renderer: MakeRenderer, expression: str) -> None:
    renderer = make_renderer(scratch_template(f"<p>{{{{ {expression} }}}}</p>"))
    with pytest.raises(SecurityError) as caught:
        renderer.render_sample("scratch", "ja")
    assert isinstance(caught.value, UnsafeTemplateError)
    assert isinstance(caught.value, EmailTemplateError)


def test_template_without_the_layout_fails_compliance(make_renderer: MakeRenderer) -> None:
    files = scratch_template()
    files["scratch/body.ja.html.j2"] = "<html><body><p>{{ greeting }}</p></body></html>"
    renderer = make_renderer(files)
    with pytest.raises(ComplianceError, match="postal address"):
        renderer.render_sample("scratch", "ja")


def test_loop_between_table_rows_is_inlined_once(make_renderer: MakeRenderer) -> None:
    style = "{% block style %}<style>.t td { color: #123456; }</style>{% endblock %}\n"
    html = '<table class="t">\n{% for item in items %}\n<tr><td>{{ item }}</td></tr>\n{% endfor %}\n</table>'
    files = scratch_template(html, html_extra=style, variables="[items]", sample="{items: [a, b], contact_id: x}")
    files["scratch/subject.ja.txt.j2"] = "件名"
    files["scratch/body.ja.txt.j2"] = '{% extends "_layouts/base.txt.j2" %}{% block content %}x{% endblock %}'
    renderer = make_renderer(files)

    html_out = renderer.render("scratch", "ja", {"items": ["一", "二", "三"], "contact_id": "x"}).html
    assert renderer.css_strategy("scratch", "ja") == "inline-once"
    table = html_out[html_out.index('<table class="t"') : html_out.index("</table>", html_out.index('class="t"'))]
    assert table.count('<td style="color: #123456;">') == 3  # the rows stayed inside the table


def test_dynamic_class_falls_back_to_inlining_each_message(make_renderer: MakeRenderer) -> None:
    style = "{% block style %}<style>.vip { color: #aa0000; }</style>{% endblock %}\n"
    files = scratch_template('<p class="{{ tier }}">{{ greeting }}</p>', html_extra=style,
                             variables="[greeting, tier]", sample="{greeting: x, tier: vip, contact_id: P-1}")  # fmt: skip
    renderer = make_renderer(files)

    html_out = renderer.render_sample("scratch", "ja").html
    assert renderer.css_strategy("scratch", "ja").startswith("per-message: a Jinja tag inside a class=")
    assert '<p class="vip" style="color: #aa0000;">' in html_out


def test_edited_template_is_picked_up(make_renderer: MakeRenderer, tmp_path: Path) -> None:
    renderer = make_renderer(scratch_template("<p>版1 {{ greeting }}</p>"))
    assert "版1" in renderer.render_sample("scratch", "ja").html

    path = tmp_path / "templates" / "scratch" / "body.ja.html.j2"
    path.write_text(path.read_text(encoding="utf-8").replace("版1", "版2"), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # coarse-mtime filesystems
    assert "版2" in renderer.render_sample("scratch", "ja").html


@pytest.mark.parametrize(
    ("path", "part"),
    [
        ("scratch/subject.ja.txt.j2", "subject"),
        ("scratch/body.ja.txt.j2", "text"),
        ("_layouts/footer.txt.j2", "text"),
        ("_layouts/base.html.j2", "html"),
        ("_layouts/footer.html.j2", "html"),
    ],
    ids=["subject", "text-body", "text-footer", "html-layout", "html-footer"],
)
def test_an_edit_to_any_file_of_the_email_is_picked_up(
    make_renderer: MakeRenderer, tmp_path: Path, path: str, part: str
) -> None:
    files = scratch_template(subject="件名 {{ greeting }}", text_content="本文 {{ greeting }}")
    renderer = make_renderer(files)  # reload_seconds=0: every render looks at the files again
    assert "版2" not in getattr(renderer.render_sample("scratch", "ja"), part)

    file = tmp_path / "templates" / path
    source = file.read_text(encoding="utf-8")
    # The footers' Japanese branch follows their {% else %}; the HTML layout's <body> is outside any block.
    anchor = next(a for a in ("{{ greeting }}", "{% else %}\n", "<body>\n") if a in source)
    file.write_text(source.replace(anchor, f"{anchor}版2 ", 1), encoding="utf-8")
    stat = file.stat()
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # coarse-mtime filesystems
    assert "版2" in getattr(renderer.render_sample("scratch", "ja"), part)


def test_a_variable_set_in_one_part_stays_in_that_part(make_renderer: MakeRenderer) -> None:
    # The three templates share one namespace per recipient; what one sets must not reach the others.
    files = scratch_template(
        subject='{% set greeting = "件名だけ" %}{{ greeting }}', text_content="本文 {{ greeting }}"
    )
    email = make_renderer(files).render_sample("scratch", "ja")

    assert email.subject == "件名だけ"
    assert "本文 こんにちは" in email.text and "<p>こんにちは</p>" in email.html
    assert "件名だけ" not in email.text + email.html


def test_unknown_template_is_a_clear_error(renderer: TemplateRenderer) -> None:
    with pytest.raises(TemplateSourceError, match="does not exist"):
        renderer.render("no_such_template", "ja", {})
    with pytest.raises(TemplateSourceError, match="not a template folder"):
        renderer.render("../etc", "ja", {})

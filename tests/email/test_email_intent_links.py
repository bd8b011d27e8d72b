"""Intent links (templates/<name>/intent_links.yml): the file's rules, the match rule, and the lint that checks them."""

from __future__ import annotations

import pytest
from conftest import TEMPLATES_DIR, MakeRenderer, scratch_template

from kizuna.email.intent_links import (
    FILE_NAME,
    IntentLink,
    IntentLinksError,
    lint_intent_links,
    load_intent_links,
    parse_intent_links,
    template_folders,
)
from kizuna.email.render import TemplateRenderer

SHIPPED_WITH_LINKS = [t for t in template_folders(TEMPLATES_DIR) if (TEMPLATES_DIR / t / FILE_NAME).exists()]


def test_a_shipped_template_marks_its_product_page_as_upgrade_intent() -> None:
    links = load_intent_links(TEMPLATES_DIR, "cross_sell_analytics")
    assert [(k.url, k.intent) for k in links] == [("https://example.co.jp/products/analytics", "upgrade")]


@pytest.mark.parametrize("template", SHIPPED_WITH_LINKS)
def test_shipped_intent_links_lint_clean(renderer: TemplateRenderer, template: str) -> None:
    assert lint_intent_links(renderer, template) == []


@pytest.mark.parametrize(
    ("declared", "clicked", "matches"),
    [
        ("https://x.jp/pricing", "https://x.jp/pricing", True),
        ("https://x.jp/pricing", "https://x.jp/pricing?utm_source=mail", True),
        ("https://x.jp/pricing", "https://x.jp/pricing#plans", True),
        ("https://x.jp/pricing", "https://x.jp/pricing-old", False),
        ("https://x.jp/pricing", "https://x.jp/pricing/enterprise", False),
        ("https://x.jp/plans/*", "https://x.jp/plans/pro?x=1", True),
        ("https://x.jp/plans/*", "https://x.jp/plan", False),
    ],
    ids=["exact", "query", "fragment", "longer-path-name", "sub-path", "prefix", "prefix-not-reached"],
)
def test_match_rule(declared: str, clicked: str, matches: bool) -> None:
    assert IntentLink(url=declared, intent="pricing").matches(clicked) is matches


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "intent_links:\n  - url: mailto:sales@x.jp\n    intent: contact\n",
            "line 2, entry 1, key url: must start with https:// or http://: SendGrid tracks clicks on web links only",
        ),
        (
            "intent_links:\n  - url: https://x.jp/p\n    intent: buy\n",
            "line 3, entry 1, key intent: must be one of pricing, upgrade, contact (got 'buy')",
        ),
        (
            "intent_links:\n  - url: https://x.jp/p\n    intent: pricing\n    label: x\n",
            "line 4, entry 1, key label: is not a known key",
        ),
        (
            "intent_links:\n  - {url: 'https://x.jp/p', intent: pricing}\n  - {url: 'https://x.jp/p', intent: contact}\n",
            "line 3, entry 2: url https://x.jp/p is already entry 1",
        ),
        ("intent_links:\n  - url: https://x.jp/*/pricing\n    intent: pricing\n", "may contain * only as its last"),
        ("- https://x.jp/pricing\n", "expected a mapping with the key intent_links"),
        ("intent_links: [\n", "not valid YAML"),
    ],
    ids=["mailto", "unknown-intent", "unknown-key", "duplicate", "star-inside", "not-a-mapping", "bad-yaml"],
)
def test_invalid_files_name_file_line_entry_and_key(text: str, message: str) -> None:
    with pytest.raises(IntentLinksError) as caught:
        parse_intent_links(text, f"scratch/{FILE_NAME}")
    assert str(caught.value).startswith(f"scratch/{FILE_NAME}: ") and message in str(caught.value)


def test_lint_checks_links_against_the_rendered_template(make_renderer: MakeRenderer) -> None:
    html = '<p><a href="https://x.jp/pricing?c={{ greeting }}">料金</a> <a href="https://x.jp/help">ヘルプ</a></p>'
    files = scratch_template(html)
    files[f"scratch/{FILE_NAME}"] = (
        "intent_links:\n"
        "  - {url: 'https://x.jp/pricing', intent: pricing}\n"
        "  - {url: 'https://x.jp/contact', intent: contact}\n"
        "  - {url: 'https://sender.example.jp/*', intent: contact}\n"
    )
    problems = lint_intent_links(make_renderer(files), "scratch")
    assert problems == [
        f"scratch/{FILE_NAME}: entry 2 (https://x.jp/contact): matches no link of body.ja.html.j2 (rendered with "
        "sample_context); copy the href from the template, or end the url with * to match links that start with it",
        f"scratch/{FILE_NAME}: entry 3 (https://sender.example.jp/*): matches the unsubscribe link; make the url "
        "more specific",
    ]


def test_lint_reports_an_invalid_file_and_is_silent_without_one(make_renderer: MakeRenderer) -> None:
    files = scratch_template()
    assert lint_intent_links(make_renderer(files), "scratch") == []
    files[f"scratch/{FILE_NAME}"] = "intent_links:\n  - url: https://x.jp/p\n"
    assert lint_intent_links(make_renderer(files), "scratch") == [
        f"scratch/{FILE_NAME}: line 2, entry 1, key intent: is missing (an entry needs url and intent)"
    ]

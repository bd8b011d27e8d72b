"""Rendering speed per recipient on one core, side by side with the bare-Jinja reference of the issue.

The email: the shipped renewal_reminder in Japanese (≈ 4 KB of HTML after inlining; the issue's "≈ 3 KB
Japanese HTML email"), a different recipient row each time. Every round runs every line below once over the
same rows, alternately, and each line keeps its best round, timed in CPU time of the process's one thread
(and, for comparison, wall-clock time): load from other processes then hits all lines alike and hardly
the figures themselves, so the ratios to the reference hold even on a busy machine.

    reference        the issue's definition: one SandboxedEnvironment (autoescape, StrictUndefined, kizuna's
                     filters), the layout-expanded HTML template with its CSS inlined once, then one
                     ``template.render`` per recipient. No subject, no text part, no checks.
    whole message    what a campaign produces per recipient (kizuna.campaigns.run.campaign_message): subject +
                     text + HTML rendered, the subject, empty-body and 特定電子メール法 footer checks, the signed
                     unsubscribe token and URL, then the OutgoingMessage with List-Unsubscribe headers and its
                     header-injection checks. This is the figure the ≥ 10,000/s target applies to.
    whole email      TemplateRenderer.render alone (the same without building the OutgoingMessage).
    files stat'ed    the whole message with reload_seconds=0: every template file, meta.yml and the folder are
                     checked for edits on every message instead of at most every 2 s (the throttle's A/B).
    inlined per msg  the whole email with inline_once=False: css_inline runs on every rendered HTML body.
    parts            each per-recipient piece alone, to say what it costs: the HTML body, the text body and
                     the subject as rendered inside ``render``, the unsubscribe token and URL, and
                     build_message on a rendered email.

Run: python bench/render/bench_render.py [--n 5000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import css_inline
import jinja2
from jinja2.sandbox import SandboxedEnvironment

from kizuna.campaigns.run import campaign_message
from kizuna.campaigns.spec import Campaign
from kizuna.core.settings import PROJECT_DIR
from kizuna.email import render as render_module
from kizuna.email.filters import FILTERS
from kizuna.email.inlining import flatten, inline_source
from kizuna.email.message import build_message
from kizuna.email.render import Sender, TemplateRenderer
from kizuna.email.tokens import signed_token_factory

TEMPLATE, LOCALE = "renewal_reminder", "ja"
SENDER = Sender("株式会社キズナ", "cs@kizuna.example.jp", "〒100-0005 東京都千代田区丸の内1-1-1", "03-0000-0000")
UNSUBSCRIBE_URL = "https://kizuna.example.jp/u?c={contact_token}"
SECRET = "bench-secret"  # signs the bench's made-up contact ids


def make_renderer(reload_seconds: float = 2.0, *, inline: bool = True) -> TemplateRenderer:
    """As TemplateRenderer.from_settings builds it: signed unsubscribe tokens."""
    return TemplateRenderer(
        PROJECT_DIR / "templates",
        SENDER,
        UNSUBSCRIBE_URL,
        contact_token=signed_token_factory(SECRET),
        inline_once=inline,
        reload_seconds=reload_seconds,
    )


def recipient_rows(renderer: TemplateRenderer, n: int) -> list[dict[str, Any]]:
    """Rows shaped like campaign_recipients joined with the customer's context (kizuna.campaigns.run)."""
    sample = renderer.meta(TEMPLATE).sample_context
    return [
        {
            **sample,
            "contact_id": f"P-{i:06d}",
            "customer_name": f"株式会社みらい物産{i}",
            "contact_name": f"山田 太郎{i}",
            "email": f"taro{i}@mirai-bussan.example.jp",
            "mrr": 80_000 + i,
            "days_to_renewal": 30 + i % 60,
            "message_key": f"renewal_reminder:2026-11-23:P-{i:06d}",
            "locale": LOCALE,
            "variant": "default",
            "cc_email": None,
            "from_email": None,
        }
        for i in range(n)
    ]


def reference_template() -> jinja2.Template:
    """The issue's bare-Jinja reference: sandboxed, autoescaped, CSS inlined once into the expanded source."""
    loader = jinja2.FileSystemLoader(PROJECT_DIR / "templates", encoding="utf-8")
    env = SandboxedEnvironment(
        loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters.update(FILTERS)
    source = flatten(lambda name: loader.get_source(env, name)[0], f"{TEMPLATE}/body.{LOCALE}.html.j2")
    inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
    return env.from_string(inline_source(inliner, source))


def interleaved(
    lines: dict[str, tuple[Callable[[Any], object], list[Any]]], rounds: int
) -> dict[str, tuple[float, float]]:
    """Best messages per CPU second and per wall-clock second of each line, all lines once per round, in turn.

    CPU time (this thread's) leaves out the time other processes held the core, so it is the per-core
    figure that holds on a shared machine; on an idle one the two agree.
    """
    best = {name: (0.0, 0.0) for name in lines}
    for _ in range(rounds):
        for name, (fn, items) in lines.items():
            cpu, wall = time.thread_time(), time.perf_counter()
            for item in items:
                fn(item)
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            best[name] = (max(best[name][0], len(items) / cpu), max(best[name][1], len(items) / wall))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    renderer, unthrottled, per_message = make_renderer(), make_renderer(reload_seconds=0), make_renderer(inline=False)
    campaign = Campaign(name=TEMPLATE, template=TEMPLATE, locale=LOCALE)
    rows = recipient_rows(renderer, args.n)
    email = renderer.render(TEMPLATE, LOCALE, rows[0])

    # The reference gets what the renderer injects, with the URL made beforehand (its cost is a part below).
    injected = [
        {**row, "sender": SENDER, "unsubscribe_url": renderer.unsubscribe_url_for(row), "locale": LOCALE}
        for row in rows
    ]
    reference = reference_template()
    assert " ".join(reference.render(injected[0]).split()) == " ".join(email.html.split()), "not the same HTML"
    # The parts, as render() runs them: one namespace per recipient shared by the three templates.
    variant = renderer._variant(TEMPLATE, LOCALE)
    namespaces = [{**renderer._globals, **ctx} for ctx in injected]
    inlined = variant.html.inlined
    assert inlined is not None
    rendered = [renderer.render(TEMPLATE, LOCALE, row) for row in rows]

    lines: dict[str, tuple[Callable[[Any], object], list[Any]]] = {
        "reference: bare Jinja, CSS inlined once, one render": (reference.render, injected),
        "whole message (campaign_message)": (lambda row: campaign_message(renderer, campaign, "bench", row), rows),
        "whole email (TemplateRenderer.render)": (lambda row: renderer.render(TEMPLATE, LOCALE, row), rows),
        "whole message, files stat'ed per message": (
            lambda row: campaign_message(unthrottled, campaign, "bench", row),
            rows,
        ),
        "whole email, CSS inlined per message": (lambda row: per_message.render(TEMPLATE, LOCALE, row), rows),
        "part: HTML body (+ empty-content capture)": (
            lambda ns: render_module._render_body(inlined, variant.html_name, ns),
            namespaces,
        ),
        "part: text body (+ capture)": (
            lambda ns: render_module._render_body(variant.text, variant.text_name, ns),
            namespaces,
        ),
        "part: subject": (lambda ns: render_module._render_one(variant.subject, ns), namespaces),
        "part: signed unsubscribe token + URL": (renderer.unsubscribe_url_for, rows),
        "part: build_message (headers, checks)": (
            lambda r: build_message(r, "taro@mirai-bussan.example.jp", "山田 太郎", "key", custom_args={"run_id": "b"}),
            rendered,
        ),
    }
    print(f"strategy: {renderer.css_strategy(TEMPLATE, LOCALE)}")
    print(
        f"html {len(email.html):,} characters ({len(email.html.encode()):,} bytes UTF-8), "
        f"text {len(email.text):,} characters; {args.n:,} recipients, best of {args.rounds} rounds"
    )
    best = interleaved(lines, args.rounds)
    print("load average (1, 5, 15 min) after the run: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    ref = best[next(iter(lines))][0]
    print(f"{'':<45} {'per CPU second':>14} {'µs CPU':>7} {'× reference':>11} {'per wall second':>15}")
    for name, (cpu_rate, wall_rate) in best.items():
        print(f"{name:<45} {cpu_rate:>14,.0f} {1e6 / cpu_rate:>7.1f} {cpu_rate / ref:>11.2f} {wall_rate:>15,.0f}")


if __name__ == "__main__":
    main()

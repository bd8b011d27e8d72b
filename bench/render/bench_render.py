"""Rendering speed: the shipped renewal_reminder (ja, ≈ 3 KB HTML) per recipient on one core, CSS inlined once.

Run: python bench/render/bench_render.py [--n 5000] [--rounds 5]. Prints messages/s (best round) for the whole
email (subject + text + HTML, as a campaign renders it) and for the HTML body alone.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from kizuna.email.render import Sender, TemplateRenderer
from kizuna.settings import PROJECT_DIR

SENDER = Sender("株式会社キズナ", "cs@kizuna.example.jp", "〒100-0005 東京都千代田区丸の内1-1-1", "03-0000-0000")


def contexts(renderer: TemplateRenderer, n: int) -> list[dict[str, Any]]:
    sample = renderer.meta("renewal_reminder").sample_context
    return [
        {**sample, "contact_id": f"P-{i:06d}", "customer_name": f"株式会社みらい物産{i}", "mrr": 80000 + i}
        for i in range(n)
    ]


def best_rate(fn: Any, items: list[Any], rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for item in items:
            fn(item)
        best = max(best, len(items) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    renderer = TemplateRenderer(PROJECT_DIR / "templates", SENDER, "https://kizuna.example.jp/u?c={contact_token}")
    items = contexts(renderer, args.n)
    email = renderer.render("renewal_reminder", "ja", items[0])
    print(f"strategy: {renderer.css_strategy('renewal_reminder', 'ja')}")
    print(
        f"html {len(email.html)} characters ({len(email.html.encode())} bytes UTF-8), text {len(email.text)} characters"
    )
    whole = best_rate(lambda ctx: renderer.render("renewal_reminder", "ja", ctx), items, args.rounds)
    injected = [
        {**c, "sender": SENDER, "unsubscribe_url": "https://kizuna.example.jp/u", "locale": "ja"} for c in items
    ]
    html_only = best_rate(lambda ctx: renderer._render_html("renewal_reminder", "ja", ctx), injected, args.rounds)
    print(f"whole email (subject + text + HTML + checks): {whole:,.0f} messages/s")
    print(f"HTML body alone (inlined template, one Jinja render): {html_only:,.0f} messages/s")


if __name__ == "__main__":
    main()

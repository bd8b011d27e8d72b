"""The inlining cache: each (template, locale)'s HTML body with its CSS inlined once, where that is proven safe.

The layout-expanded template source is inlined once per template version, then each message is one Jinja
render; running css_inline on every rendered message instead costs ≈ 3× as much per email (bench/render; both
give the same HTML apart from whitespace). Inlining first is used only where kizuna.email.inlining proves it
safe for the template (no Jinja inside <style> or class/id/style attributes, no Jinja tag moved by the HTML
parser) *and* both strategies give the same HTML on the template's sample_context; otherwise that template
falls back to inlining each rendered message, and the entry's ``strategy`` says why. Entries are keyed by
(template, locale) and the mtimes of every file involved (body, layouts, partials, meta.yml).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import css_inline
import jinja2

from kizuna.email.discovery import TemplateCatalog
from kizuna.email.inlining import InlineOnceUnsafe, flatten, inline_source, same_html
from kizuna.email.limits import MessageBudget, RenderLimits
from kizuna.email.model import Sender
from kizuna.email.sandbox import Sandboxes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HtmlEntry:
    """One (template, locale) HTML body: its files' versions and, when safe, the pre-inlined template."""

    fingerprint: tuple[tuple[str, int], ...]
    inlined: jinja2.Template | None
    strategy: str
    checked_at: list[float]  # monotonic time of the last mtime check; a list so the frozen entry can update it


class InlineCache:
    """HTML entries by (template, locale); their files are stat'ed at most every ``reload_seconds``."""

    def __init__(
        self,
        sandboxes: Sandboxes,
        catalog: TemplateCatalog,
        sender: Sender,
        unsubscribe_url_for: Callable[[Mapping[str, Any]], str],
        limits: RenderLimits,
        *,
        inline_once: bool,
        reload_seconds: float,
    ) -> None:
        self._sandboxes = sandboxes
        self._catalog = catalog
        self._sender = sender
        self._unsubscribe_url_for = unsubscribe_url_for
        self._limits = limits
        self._inline_once = inline_once
        self._reload_seconds = reload_seconds
        # Built once and reused; never fetches remote stylesheets named by a template.
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], HtmlEntry] = {}

    def inline(self, html: str) -> str:
        """``html`` with its <style> inlined: the per-message strategy."""
        return self._inliner.inline(html)

    def entry(self, template: str, locale: str) -> HtmlEntry:
        name = f"{template}/body.{locale}.html.j2"
        key = (template, locale)
        entry = self._entries.get(key)
        if entry is not None:
            now = time.monotonic()
            if now - entry.checked_at[0] < self._reload_seconds:
                return entry  # stat the files at most every reload_seconds, not for every message
            try:
                if self._fingerprint([f for f, _ in entry.fingerprint]) == entry.fingerprint:
                    entry.checked_at[0] = now
                    return entry
            except FileNotFoundError:
                pass
        with self._lock:
            files = [*self._sandboxes.files(name), f"{template}/meta.yml"]  # the sample proves the inlining
            fingerprint = self._fingerprint(files)
            inlined: jinja2.Template | None = None
            if not self._inline_once:
                strategy = "per-message: inline_once is off"
            else:
                try:
                    inlined = self._build_inlined(template, locale, name)
                    strategy = "inline-once"
                except InlineOnceUnsafe as exc:
                    strategy = f"per-message: {exc}"
                    log.info("%s: CSS inlined per message: %s", name, exc)
            entry = HtmlEntry(fingerprint, inlined, strategy, [time.monotonic()])
            self._entries[key] = entry
            return entry

    def _fingerprint(self, files: list[str]) -> tuple[tuple[str, int], ...]:
        return tuple((f, (self._sandboxes.templates_dir / f).stat().st_mtime_ns) for f in files)

    def _build_inlined(self, template: str, locale: str, name: str) -> jinja2.Template:
        html_env = self._sandboxes.html
        source = inline_source(self._inliner, flatten(self._sandboxes.source, name))
        try:
            inlined = html_env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise InlineOnceUnsafe(f"the inlined source does not compile: {exc}") from None
        # Prove it on the sample: both strategies must give the same document.
        meta = self._catalog.meta(template)
        sample = meta.sample_context
        try:
            url = str(sample.get("unsubscribe_url") or self._unsubscribe_url_for(sample))
            ctx = {**sample, "sender": self._sender, "unsubscribe_url": url, "locale": locale}
            with MessageBudget(self._limits, fresh=True):  # the sample's own budget, not the message's being sent
                fast = inlined.render(ctx)
                slow = self._inliner.inline(html_env.get_template(name).render(ctx))
        except Exception as exc:
            raise InlineOnceUnsafe(f"cannot verify on sample_context ({type(exc).__name__}: {exc})") from None
        if not same_html(fast, slow):
            raise InlineOnceUnsafe("inlining before rendering gives different HTML on sample_context")
        return inlined

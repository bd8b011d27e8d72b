"""Rendering campaign emails from marketer-owned templates: sandboxed Jinja, CSS inlined once per version.

A template is a folder under templates/ (``_layouts/`` holds the shared layout and the legal footer):

    meta.yml                 description, sender overrides, categories, variables, sample_context
    subject.<locale>.txt.j2  one line
    body.<locale>.html.j2    extends _layouts/base.html.j2; its <style> is inlined
    body.<locale>.txt.j2     extends _layouts/base.txt.j2

``TemplateRenderer`` composes the named parts and renders one recipient's email: kizuna.email.discovery (the
folders, their locales and meta.yml), kizuna.email.sandbox (the Jinja sandboxes, and errors naming file and
line), kizuna.email.inline_cache (each HTML body's CSS inlined once where proven safe; ``css_strategy()`` says
why not), kizuna.email.compliance (a one-line subject, the legal footer) and kizuna.email.lint.

Per recipient only what depends on the recipient runs: one namespace (the row, sender, unsubscribe URL, locale)
shared by the three renders (subject, text, HTML), the checks on their output and the unsubscribe token.
Everything else per (template, asked locale) — meta.yml, the locale used, the compiled templates, the values
copied into every RenderedEmail — is resolved once and looked at again (file mtimes) at most every
``reload_seconds`` (2 s), as are the layouts Jinja loads for {% extends %}/{% include %}: an edited file shows
in a running campaign within 2 s, and rendering does no file system calls in between. docs/benchmarks.md
("Rendering") has the figures.

Templates read only files inside templates/: a link leading outside (kizuna.email.paths) is refused before
it is read, and named by lint. Each message is rendered within loop, size and time limits
(kizuna.email.limits). Lint also warns where a locale's HTML and text say different things
(kizuna.email.consistency).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
import jinja2.runtime

from kizuna.email import lint as template_lint
from kizuna.email.compliance import FooterCheck, check_subject
from kizuna.email.discovery import LAYOUTS_DIR, TemplateCatalog, TemplateMeta
from kizuna.email.errors import (
    ComplianceError,
    EmailTemplateError,
    EmptyBodyError,
    InvalidSubjectError,
    MissingVariableError,
    OutsideTemplatesError,
    TemplateLimitError,
    TemplateRenderError,
    TemplateSourceError,
    UnsafeTemplateError,
)
from kizuna.email.inline_cache import HtmlEntry, InlineCache
from kizuna.email.limits import MessageBudget, RenderLimits, check_size
from kizuna.email.lint import INJECTED
from kizuna.email.model import RenderedEmail, Sender
from kizuna.email.sandbox import Sandboxes
from kizuna.email.tokens import contact_token_from_context, signed_token_factory

if TYPE_CHECKING:
    from kizuna.core.settings import Settings

# The names callers have always imported from here; each now lives with its part.
__all__ = [
    "INJECTED",
    "LAYOUTS_DIR",
    "ComplianceError",
    "EmailTemplateError",
    "EmptyBodyError",
    "InvalidSubjectError",
    "MissingVariableError",
    "OutsideTemplatesError",
    "RenderedEmail",
    "Sender",
    "TemplateLimitError",
    "TemplateMeta",
    "TemplateRenderError",
    "TemplateRenderer",
    "TemplateSourceError",
    "UnsafeTemplateError",
    "contact_token_from_context",
]

log = logging.getLogger(__name__)

_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]+")  # what urllib.parse.quote(..., safe="") leaves as it is
_MAX_VARIANTS = 1024  # asked locales come from data; an unbounded variety must not grow the cache forever
_CONCAT = "".join


@dataclass(frozen=True, slots=True)
class _Variant:
    """What one (template, asked locale) needs for every recipient, resolved once per ``reload_seconds``:
    meta.yml, the locale used, the three compiled templates and the values copied into each RenderedEmail."""

    locale: str
    variables: tuple[str, ...]
    subject_name: str
    subject: jinja2.Template
    text_name: str
    text: jinja2.Template
    html_name: str
    html: HtmlEntry
    categories: tuple[str, ...]
    unsubscribe_group: int | None
    from_name: str
    from_email: str
    reply_to: str | None
    checked_at: float


class TemplateRenderer:
    """Renders template folders under ``templates_dir`` for one sender; safe to share between threads."""

    def __init__(
        self,
        templates_dir: Path,
        sender: Sender,
        unsubscribe_url: str,
        *,
        contact_token: Callable[[Mapping[str, Any]], str] = contact_token_from_context,
        inline_once: bool = True,
        reload_seconds: float = 2.0,
        limits: RenderLimits | None = None,
    ) -> None:
        if "{contact_token}" not in unsubscribe_url:
            raise ValueError(f"unsubscribe_url {unsubscribe_url!r} lacks the {{contact_token}} placeholder")
        self.templates_dir = Path(templates_dir)
        self.sender = sender
        self._unsubscribe_url = unsubscribe_url
        self._contact_token = contact_token
        self._limits = limits or RenderLimits()
        self._reload_seconds = reload_seconds
        self._catalog = TemplateCatalog(self.templates_dir, reload_seconds)
        self._sandboxes = Sandboxes(self.templates_dir, reload_seconds, self._limits)
        self._html_env, self._text_env = self._sandboxes.html, self._sandboxes.text
        self._inline_cache = InlineCache(
            self._sandboxes,
            self._catalog,
            sender,
            self.unsubscribe_url_for,
            self._limits,
            inline_once=inline_once,
            reload_seconds=reload_seconds,
        )
        self._footer = FooterCheck(sender)
        self._variants: dict[tuple[str, str], _Variant] = {}
        # Jinja's globals (range, dict, ...), added to each recipient's namespace as Template.render would.
        self._globals = dict(self._html_env.globals)

    @classmethod
    def from_settings(cls, settings: Settings) -> TemplateRenderer:
        sender = Sender(
            name=settings.sender_name,
            email=settings.sender_email,
            postal_address=settings.sender_postal_address,
            contact=settings.sender_contact,
        )
        return cls(
            settings.templates_dir,
            sender,
            settings.unsubscribe_url,
            contact_token=signed_token_factory(settings.unsubscribe_secret.get_secret_value()),
            limits=RenderLimits(
                max_loop_iterations=settings.template_max_loop_iterations,
                max_text_chars=settings.template_max_text_chars,
                max_seconds=settings.template_render_seconds,
            ),
        )

    # -- what exists (kizuna.email.discovery) ------------------------------------------------------------

    def templates(self) -> list[str]:
        """Template folders (those with a meta.yml), excluding _layouts and hidden folders."""
        return self._catalog.templates()

    def locales(self, template: str) -> tuple[str, ...]:
        """Locales with a complete variant (subject, HTML body and text body)."""
        return self._catalog.locales(template)

    def meta(self, template: str) -> TemplateMeta:
        return self._catalog.meta(template)

    def css_strategy(self, template: str, locale: str) -> str:
        """'inline-once', or 'per-message: <why inlining before rendering was not safe>'."""
        locale = self._catalog.resolve_locale(template, locale, self.meta(template))
        return self._inline_cache.entry(template, locale).strategy

    # -- rendering ---------------------------------------------------------------------------------------

    def render(self, template: str, locale: str, context: Mapping[str, Any]) -> RenderedEmail:
        """One recipient's email. Falls back to the template's default locale when ``locale`` is missing."""
        with MessageBudget(self._limits):  # loops, sizes and time of this one message (kizuna.email.limits)
            return self._render_email(template, locale, context)

    def _render_email(self, template: str, locale: str, context: Mapping[str, Any]) -> RenderedEmail:
        variant = self._variant(template, locale)
        ns, unsubscribe_url = self._namespace(template, variant, context)

        subject = self._render(variant.subject, variant.subject_name, ns).strip()
        check_subject(subject, variant.subject_name)
        text = self._render(variant.text, variant.text_name, ns, body=True).strip() + "\n"
        html = self._render_html(variant, ns)
        self._footer.check(template, variant.locale, html, text, unsubscribe_url)
        return RenderedEmail(
            subject=subject,
            html=html,
            text=text,
            template=template,
            locale=variant.locale,
            categories=variant.categories,
            unsubscribe_group=variant.unsubscribe_group,
            from_name=variant.from_name,
            from_email=variant.from_email,
            reply_to=variant.reply_to,
            unsubscribe_url=unsubscribe_url,
        )

    def _namespace(self, template: str, variant: _Variant, context: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """What the three templates of one message see, and its unsubscribe URL."""
        missing = [v for v in variant.variables if v not in context]
        if missing:
            raise MissingVariableError(
                f"{template}: context lacks declared variable(s) {', '.join(missing)} "
                "(add them to the campaign's selection, or remove them from meta.yml variables)",
                missing[0],
            )
        unsubscribe_url = str(context.get("unsubscribe_url") or self.unsubscribe_url_for(context))
        # One namespace for the three templates (each would otherwise copy it, with Jinja's globals, again).
        ns = {**self._globals, **context}
        for key, value in context.items():
            if isinstance(value, float) and value != value:
                ns[key] = None  # NaN is how pandas spells an empty cell: to a template as empty as None, not "nan"
        ns["sender"], ns["unsubscribe_url"], ns["locale"] = self.sender, unsubscribe_url, variant.locale
        return ns, unsubscribe_url

    def render_sample(self, template: str, locale: str) -> RenderedEmail:
        """The template rendered with its meta.yml sample_context (preview and lint)."""
        return self.render(template, locale, self.meta(template).sample_context)

    def unsubscribe_url_for(self, context: Mapping[str, Any]) -> str:
        token = self._contact_token(context)
        if not _URL_SAFE.fullmatch(token):
            token = quote(token, safe="")
        return self._unsubscribe_url.replace("{contact_token}", token)

    # -- lint (kizuna.email.lint) ------------------------------------------------------------------------

    def lint(self, template: str) -> list[str]:
        """Problems of one template folder; an empty list means every locale renders its sample_context."""
        return template_lint.lint(template, self._catalog, self._sandboxes, self.render_sample)

    def lint_warnings(self, template: str) -> list[str]:
        """Where a locale's HTML and text versions differ in links or sentences (kizuna.email.consistency);
        warnings, not problems: the email still renders and sends."""
        return template_lint.lint_warnings(template, self._catalog, self._sample_contents)

    def _sample_contents(self, template: str, locale: str) -> tuple[str, str]:
        """The HTML and text ``content`` blocks of one locale, rendered with the sample_context."""
        with MessageBudget(self._limits):
            variant = self._variant(template, locale)
            ns, _ = self._namespace(template, variant, self.meta(template).sample_context)
            html = self._sandboxes.template(self._html_env, variant.html_name)
            return self._content(html, variant.html_name, ns), self._content(variant.text, variant.text_name, ns)

    def _content(self, tmpl: jinja2.Template, name: str, ns: dict[str, Any]) -> str:
        try:
            context = tmpl.new_context(ns, shared=True)
            block = context.blocks.get("content")
            return _CONCAT(block[0](context) if block else tmpl.root_render_func(context))
        except Exception as exc:
            raise self._sandboxes.translate(exc, name) from None

    # -- internals ---------------------------------------------------------------------------------------

    def _variant(self, template: str, locale: str) -> _Variant:
        """The cached variant; its files are looked at again (meta, locales, mtimes) every reload_seconds."""
        key = (template, locale)
        variant = self._variants.get(key)
        now = time.monotonic()
        if variant is not None and now - variant.checked_at < self._reload_seconds:
            return variant
        meta = self.meta(template)
        used = self._catalog.resolve_locale(template, locale, meta)
        subject_name, text_name = f"{template}/subject.{used}.txt.j2", f"{template}/body.{used}.txt.j2"
        subject, text = (self._sandboxes.template(self._text_env, name) for name in (subject_name, text_name))
        variant = _Variant(
            locale=used,
            variables=tuple(meta.variables),
            subject_name=subject_name,
            subject=subject,
            text_name=text_name,
            text=text,
            html_name=f"{template}/body.{used}.html.j2",
            html=self._inline_cache.entry(template, used),
            categories=tuple(meta.categories),
            unsubscribe_group=meta.unsubscribe_group,
            from_name=meta.from_name or self.sender.name,
            from_email=meta.from_email or self.sender.email,
            reply_to=meta.reply_to,
            checked_at=now,
        )
        if len(self._variants) >= _MAX_VARIANTS:
            self._variants.clear()
        self._variants[key] = variant
        return variant

    def _render(self, tmpl: jinja2.Template, name: str, ns: dict[str, Any], body: bool = False) -> str:
        try:
            out = _render_body(tmpl, name, ns) if body else _render_one(tmpl, ns)
            return check_size(out, self._limits, "the rendered text")
        except EmailTemplateError:
            raise
        except Exception as exc:
            raise self._sandboxes.translate(exc, name) from None

    def _render_html(self, variant: _Variant, ns: dict[str, Any]) -> str:
        name, inlined = variant.html_name, variant.html.inlined
        if inlined is not None:
            try:
                return check_size(_render_body(inlined, name, ns), self._limits)
            except Exception:
                pass  # rendered again below from the real files, for an error naming file and line
        html = self._render(self._sandboxes.template(self._html_env, name), name, ns, body=True)
        if inlined is not None:
            log.warning("pre-inlined %s failed where the original rendered; check kizuna.email.inlining", name)
        return self._inline_cache.inline(html)


def _render_one(tmpl: jinja2.Template, ns: dict[str, Any]) -> str:
    """``tmpl.render(ns)`` without its copies: ``ns`` already holds Jinja's globals and is never written to."""
    try:
        return _CONCAT(tmpl.root_render_func(tmpl.new_context(ns, shared=True)))
    except Exception:
        tmpl.environment.handle_exception()  # Jinja's traceback rewrite: frames name the .j2 file and line


def _render_body(tmpl: jinja2.Template, name: str, ns: dict[str, Any]) -> str:
    """Render, capturing the template's own ``content`` block on the way: with a layout the whole is
    never empty (the footer), so an empty body means an empty content block. One pass, no re-render."""
    context = tmpl.new_context(ns, shared=True)
    own: list[str] = []
    content = context.blocks.get("content")
    if content:
        inner = content[0]

        def capture(block_context: jinja2.runtime.Context) -> Iterator[str]:
            block = _CONCAT(inner(block_context))  # one piece, not a generator step per piece of output
            own.append(block)
            yield block

        context.blocks["content"] = [capture, *content[1:]]
    try:
        out = _CONCAT(tmpl.root_render_func(context))
    except Exception:
        tmpl.environment.handle_exception()  # Jinja's traceback rewrite: frames name the .j2 file and line
    if not (_CONCAT(own) if content else out).strip():
        raise EmptyBodyError(f"{name} rendered an empty body (its content block has no text)")
    return out

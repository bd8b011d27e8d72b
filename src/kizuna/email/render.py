"""Rendering campaign emails from marketer-owned templates: sandboxed Jinja, CSS inlined once per version.

A template is a folder under templates/ (``_layouts/`` holds the shared layout and the legal footer):

    meta.yml                 description, sender overrides, categories, variables, sample_context
    subject.<locale>.txt.j2  one line
    body.<locale>.html.j2    extends _layouts/base.html.j2; its <style> is inlined
    body.<locale>.txt.j2     extends _layouts/base.txt.j2

CSS inlining: the layout-expanded template source is inlined once per template version, then each message is
one Jinja render; running css_inline on every rendered message instead costs ≈ 3× as much per email
(bench/render; both give the same HTML apart from whitespace). Inlining first is used only where
kizuna.email.inlining proves it safe for the template (no Jinja inside <style> or class/id/style attributes,
no Jinja tag moved by the HTML parser) *and* both strategies give the same HTML on the template's
sample_context; otherwise that template falls back to inlining each rendered message, and ``css_strategy()``
says why. That cache is keyed by (template, locale) and the mtimes of every file involved (body, layouts,
partials, meta.yml).

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

import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import css_inline
import jinja2
import jinja2.meta
import jinja2.runtime
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from markupsafe import escape
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kizuna.core.yaml_files import read_yaml
from kizuna.email.consistency import compare
from kizuna.email.filters import FILTERS
from kizuna.email.inlining import InlineOnceUnsafe, flatten, inline_source, same_html
from kizuna.email.limits import (
    LOOP_FILTER,
    TEXT_FILTER,
    BoundLoops,
    MessageBudget,
    RenderLimitExceeded,
    RenderLimits,
    bounded_filter,
    bounded_loop,
    check_binop,
    check_call,
    check_size,
)
from kizuna.email.paths import is_outside, links_leaving, outside_message
from kizuna.email.syntax import find_unclosed

if TYPE_CHECKING:
    from kizuna.core.settings import Settings

log = logging.getLogger(__name__)

LAYOUTS_DIR = "_layouts"
INJECTED = frozenset({"sender", "unsubscribe_url", "locale"})
_LOCALE_FILE = re.compile(r"^(subject|body)\.([A-Za-z_-]+)\.(txt|html)\.j2$")
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]+")  # what urllib.parse.quote(..., safe="") leaves as it is
_MAX_VARIANTS = 1024  # asked locales come from data; an unbounded variety must not grow the cache forever


class EmailTemplateError(jinja2.TemplateError):
    """Something is wrong with an email template or its input; the message says where and what to do."""


class TemplateSourceError(EmailTemplateError):
    """A template file or meta.yml is missing or does not parse."""


class OutsideTemplatesError(TemplateSourceError):
    """A template file, meta.yml or folder is a link leading outside templates/ (a .env, /etc, /proc …)."""


class MissingVariableError(EmailTemplateError):
    """The context lacks a variable the template needs."""

    def __init__(self, message: str, variable: str) -> None:
        super().__init__(message)
        self.variable = variable


class TemplateRenderError(EmailTemplateError):
    """A filter or expression failed on this recipient's values."""


class TemplateLimitError(TemplateRenderError):
    """Rendering one message went past a loop, size or time limit (kizuna.email.limits)."""


class UnsafeTemplateError(EmailTemplateError, SecurityError):
    """The template tried something the sandbox forbids (private attributes, unsafe calls)."""


# Unicode categories Cc, Zl and Zp (controls, line and paragraph separators; fixed by Unicode's stability
# policy): a subject with one would break or inject mail headers.
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Those, plus the explicit embeddings, overrides and isolates (bidi controls): never wanted in a subject.
_NOT_IN_A_SUBJECT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONCAT = "".join


class InvalidSubjectError(EmailTemplateError):
    """The rendered subject is empty or not a single line (a newline would inject mail headers)."""


class EmptyBodyError(EmailTemplateError):
    """The rendered body has no content of its own."""


class ComplianceError(EmailTemplateError):
    """The rendered email lacks what 特定電子メール法 requires (sender, address, contact, opt-out)."""


@dataclass(frozen=True)
class Sender:
    """Who sends, as shown in every footer."""

    name: str
    email: str
    postal_address: str
    contact: str


@dataclass(frozen=True)
class RenderedEmail:
    """One recipient's email, ready to be addressed (see kizuna.email.message.build_message)."""

    subject: str
    html: str
    text: str
    template: str
    locale: str
    categories: tuple[str, ...]
    unsubscribe_group: int | None
    from_name: str
    from_email: str
    reply_to: str | None
    unsubscribe_url: str


class TemplateMeta(BaseModel):
    """meta.yml of one template folder."""

    model_config = ConfigDict(extra="forbid")

    description: str
    default_locale: str = "ja"
    from_name: str | None = None
    from_email: str | None = None
    reply_to: str | None = None
    categories: list[str] = Field(default_factory=list, max_length=10)  # SendGrid: at most 10
    unsubscribe_group: int | None = None
    variables: list[str] = Field(default_factory=list)
    sample_context: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> TemplateMeta:
        too_long = [c for c in self.categories if not c or len(c) > 255]
        if too_long:
            raise ValueError(f"categories must be 1-255 characters (SendGrid): {too_long}")
        missing = [v for v in self.variables if v not in self.sample_context]
        if missing:
            raise ValueError(f"sample_context lacks declared variables {missing}")
        return self


def contact_token_from_context(context: Mapping[str, Any]) -> str:
    """The unsubscribe token: context['contact_token'] if the selection provides one, else contact_id."""
    token = context.get("contact_token") or context.get("contact_id")
    if not token:
        raise MissingVariableError(
            "variable 'contact_id' is missing: the unsubscribe link needs contact_id (or contact_token)",
            "contact_id",
        )
    return str(token)


@dataclass(frozen=True)
class _HtmlEntry:
    """One (template, locale) HTML body: its files' versions and, when safe, the pre-inlined template."""

    fingerprint: tuple[tuple[str, int], ...]
    inlined: jinja2.Template | None
    strategy: str
    checked_at: list[float]  # monotonic time of the last mtime check; a list so the frozen entry can update it


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
    html: _HtmlEntry
    categories: tuple[str, ...]
    unsubscribe_group: int | None
    from_name: str
    from_email: str
    reply_to: str | None
    checked_at: float


class _ThrottledLoader(jinja2.FileSystemLoader):
    """A FileSystemLoader whose "is the file unchanged?" stats the file at most every ``reload_seconds``.

    Jinja asks it on every get_template, including those that {% extends %} and {% include %} make while
    each message renders; edits still show within ``reload_seconds`` (0: checked on every call).
    """

    def __init__(self, searchpath: Path, reload_seconds: float) -> None:
        super().__init__(searchpath, encoding="utf-8")
        self.reload_seconds = reload_seconds

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        # Checked before anything is read: an include of a link to .env must not even load the secret.
        for root in self.searchpath:
            path = Path(root, *split_template_path(template))
            if os.path.lexists(path):
                if is_outside(Path(root), path):
                    raise OutsideTemplatesError(outside_message(Path(root), template))
                break
        source, filename, uptodate = super().get_source(environment, template)
        if self.reload_seconds <= 0:
            return source, filename, uptodate
        checked = [time.monotonic()]
        seconds = self.reload_seconds

        def throttled() -> bool:
            now = time.monotonic()
            if now - checked[0] < seconds:
                return True
            checked[0] = now
            return uptodate()

        return source, filename, throttled


class _Sandbox(SandboxedEnvironment):
    """The sandbox, with each template's globals in a plain dict rather than Jinja's ChainMap over the
    environment's: Jinja copies their keys into every render's context, ten times faster from a dict.
    Safe because the renderer never changes its environments' globals after creating them.

    It also keeps each message within ``limits`` (kizuna.email.limits): loops and `~` joins are rewritten
    at parse time, operators and calls checked as they run, filters wrapped by the renderer."""

    intercepted_binops = frozenset({"*", "+", "%", "**"})
    limits = RenderLimits()

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}

    def _parse(self, source: str, name: str | None, filename: str | None) -> jinja2.nodes.Template:
        tree = BoundLoops().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right, self.limits)
        return check_size(self.binop_table[operator](left, right), self.limits, f"'… {operator} …'")

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        check_call(__obj, args, kwargs, __self.limits)
        result = super().call(__context, __obj, *args, **kwargs)
        return check_size(result, __self.limits, f"the call {getattr(__obj, '__name__', '')}".strip())


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
        self._inline_once = inline_once
        loader = _ThrottledLoader(self.templates_dir, reload_seconds)
        options: dict[str, Any] = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "auto_reload": True,
        }
        self._html_env = _Sandbox(autoescape=True, **options)
        self._text_env = _Sandbox(autoescape=False, **options)
        self._limits = limits or RenderLimits()
        for env in (self._html_env, self._text_env):
            env.limits = self._limits
            # Jinja's own filters are bounded; kizuna's (yen, date_ja, company …) return text about as long as
            # their input, and wrapping them would cost every message ≈ 5% for nothing.
            env.filters = {name: bounded_filter(name, f, self._limits) for name, f in env.filters.items()}
            env.filters.update(FILTERS)
            env.filters[LOOP_FILTER] = bounded_loop(self._limits)
            env.filters[TEXT_FILTER] = functools.partial(check_size, limits=self._limits, what="a `~` join")
        # Built once and reused; never fetches remote stylesheets named by a template.
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        self._lock = threading.Lock()
        self._html_cache: dict[tuple[str, str], _HtmlEntry] = {}
        self._meta_cache: dict[str, tuple[int, TemplateMeta]] = {}
        self._locales_cache: dict[str, tuple[int, tuple[str, ...]]] = {}
        # meta() and locales() answer from here; their files are stat'ed at most every reload_seconds.
        self._fresh: dict[str, tuple[float, Any]] = {}
        self._reload_seconds = reload_seconds
        self._variants: dict[tuple[str, str], _Variant] = {}
        # Jinja's globals (range, dict, ...), added to each recipient's namespace as Template.render would.
        self._globals = dict(self._html_env.globals)
        # The 特定電子メール法 footer values that are the same in every message, as text and as escaped HTML.
        self._required = tuple(
            (what, value, str(escape(value)))
            for what, value in (
                ("sender name", sender.name),
                ("postal address", sender.postal_address),
                ("contact", sender.contact),
            )
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> TemplateRenderer:
        sender = Sender(
            name=settings.sender_name,
            email=settings.sender_email,
            postal_address=settings.sender_postal_address,
            contact=settings.sender_contact,
        )
        from kizuna.email.tokens import signed_token_factory

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

    # -- what exists -------------------------------------------------------------------------------------

    def templates(self) -> list[str]:
        """Template folders (those with a meta.yml), excluding _layouts and hidden folders."""
        return sorted(
            p.name
            for p in self.templates_dir.iterdir()
            if p.is_dir() and not p.name.startswith(("_", ".")) and (p / "meta.yml").is_file()
        )

    def locales(self, template: str) -> tuple[str, ...]:
        """Locales with a complete variant (subject, HTML body and text body)."""
        recent = self._recent(f"locales:{template}")
        if recent is not None:
            return recent
        locales = self._locales(template)
        self._fresh[f"locales:{template}"] = (time.monotonic(), locales)
        return locales

    def _locales(self, template: str) -> tuple[str, ...]:
        folder = self._folder(template)
        mtime = folder.stat().st_mtime_ns  # changes when a file is added, removed or renamed
        cached = self._locales_cache.get(template)
        if cached and cached[0] == mtime:
            return cached[1]
        found: dict[str, set[str]] = {}
        for path in folder.iterdir():
            match = _LOCALE_FILE.match(path.name)
            if match:
                found.setdefault(match.group(2), set()).add(f"{match.group(1)}.{match.group(3)}")
        complete = {"subject.txt", "body.html", "body.txt"}
        locales = tuple(sorted(loc for loc, parts in found.items() if complete <= parts))
        self._locales_cache[template] = (mtime, locales)
        return locales

    def _recent(self, key: str) -> Any:
        """A meta/locales value checked against the files less than reload_seconds ago (no file stats then)."""
        hit = self._fresh.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._reload_seconds:
            return hit[1]
        return None

    def meta(self, template: str) -> TemplateMeta:
        recent = self._recent(f"meta:{template}")
        if recent is not None:
            return recent
        meta = self._meta(template)
        self._fresh[f"meta:{template}"] = (time.monotonic(), meta)
        return meta

    def _meta(self, template: str) -> TemplateMeta:
        path = self._folder(template) / "meta.yml"
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise TemplateSourceError(f"{template}/meta.yml is missing: every template folder needs one") from None
        if is_outside(self.templates_dir, path):
            raise OutsideTemplatesError(outside_message(self.templates_dir, f"{template}/meta.yml"))
        cached = self._meta_cache.get(template)
        if cached and cached[0] == mtime:
            return cached[1]
        raw = read_yaml(path, TemplateSourceError, f"{template}/meta.yml") or {}
        try:
            meta = TemplateMeta.model_validate(raw)
        except ValidationError as exc:
            raise TemplateSourceError(f"{template}/meta.yml: {exc}") from None
        self._meta_cache[template] = (mtime, meta)
        return meta

    def css_strategy(self, template: str, locale: str) -> str:
        """'inline-once', or 'per-message: <why inlining before rendering was not safe>'."""
        locale = self._resolve_locale(template, locale, self.meta(template))
        return self._html_entry(template, locale).strategy

    # -- rendering ---------------------------------------------------------------------------------------

    def render(self, template: str, locale: str, context: Mapping[str, Any]) -> RenderedEmail:
        """One recipient's email. Falls back to the template's default locale when ``locale`` is missing."""
        with MessageBudget(self._limits):  # loops, sizes and time of this one message (kizuna.email.limits)
            return self._render_email(template, locale, context)

    def _render_email(self, template: str, locale: str, context: Mapping[str, Any]) -> RenderedEmail:
        variant = self._variant(template, locale)
        ns, unsubscribe_url = self._namespace(template, variant, context)

        subject = self._render(variant.subject, variant.subject_name, ns).strip()
        if not subject:
            raise InvalidSubjectError(f"{variant.subject_name} rendered an empty subject")
        if _NOT_IN_A_SUBJECT.search(subject):
            if _LINE_BREAKING.search(subject):
                raise InvalidSubjectError(
                    f"{variant.subject_name} rendered a subject with a line break or control character "
                    f"({subject!r}); a subject must be one line (check the values it uses)"
                )
            # U+202E and friends reorder what the reader sees ("invoice\u202efdp.exe"): a deceptive subject.
            raise InvalidSubjectError(
                f"{variant.subject_name} rendered a subject with a bidirectional control character "
                f"({subject!r}); remove it from the values the subject uses"
            )
        text = self._render(variant.text, variant.text_name, ns, body=True).strip() + "\n"
        html = self._render_html(variant, ns)
        self._check_compliance(template, variant.locale, html, text, unsubscribe_url)
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

    def lint(self, template: str) -> list[str]:
        """Problems of one template folder; an empty list means every locale renders its sample_context."""
        try:
            leaving = links_leaving(self.templates_dir, self._folder(template))
        except EmailTemplateError as exc:
            return [str(exc)]
        if leaving:  # reported whether used or not: the next edit could include it
            return [outside_message(self.templates_dir, link) for link in leaving]
        try:
            meta = self.meta(template)
            locales = self.locales(template)
        except EmailTemplateError as exc:
            return [str(exc)]
        if not locales:
            return [f"{template}: no complete locale (needs subject.<l>.txt.j2, body.<l>.html.j2, body.<l>.txt.j2)"]
        problems: list[str] = []
        if meta.default_locale not in locales:
            problems.append(f"{template}: default_locale {meta.default_locale!r} has no variant (has {locales})")
        declared = set(meta.variables) | INJECTED
        for locale in locales:
            for kind in ("subject.{}.txt.j2", "body.{}.html.j2", "body.{}.txt.j2"):
                name = f"{template}/{kind.format(locale)}"
                try:
                    used = self._variables_used(name)
                except EmailTemplateError as exc:
                    problems.append(str(exc))
                    continue
                undeclared = sorted(used - declared)
                if undeclared:
                    problems.append(f"{name} uses {undeclared}, not declared in meta.yml variables")
            try:
                self.render_sample(template, locale)
            except EmailTemplateError as exc:
                problems.append(str(exc))
        # A broken file is found both by reading it (variables used) and by rendering it: say it once.
        return list(dict.fromkeys(problems))

    def lint_warnings(self, template: str) -> list[str]:
        """Where a locale's HTML and text versions differ in links or sentences (kizuna.email.consistency);
        warnings, not problems: the email still renders and sends."""
        try:
            locales = self.locales(template)
        except EmailTemplateError:
            return []  # lint reports the folder itself
        warnings: list[str] = []
        for locale in locales:
            try:
                html, text = self._sample_contents(template, locale)
            except EmailTemplateError:
                continue  # lint reports why the sample does not render
            where = f"{template}/body.{locale}.html.j2 and body.{locale}.txt.j2"
            warnings += [f"{where}: {difference}" for difference in compare(html, text)]
        return warnings

    def _sample_contents(self, template: str, locale: str) -> tuple[str, str]:
        """The HTML and text ``content`` blocks of one locale, rendered with the sample_context."""
        with MessageBudget(self._limits):
            variant = self._variant(template, locale)
            ns, _ = self._namespace(template, variant, self.meta(template).sample_context)
            html = self._template(self._html_env, variant.html_name)
            return self._content(html, variant.html_name, ns), self._content(variant.text, variant.text_name, ns)

    def _content(self, tmpl: jinja2.Template, name: str, ns: dict[str, Any]) -> str:
        try:
            context = tmpl.new_context(ns, shared=True)
            block = context.blocks.get("content")
            return _CONCAT(block[0](context) if block else tmpl.root_render_func(context))
        except Exception as exc:
            raise self._translate(exc, name) from None

    # -- internals ---------------------------------------------------------------------------------------

    def _folder(self, template: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", template) or template.startswith(LAYOUTS_DIR):
            raise TemplateSourceError(f"{template!r} is not a template folder name")
        folder = self.templates_dir / template
        if is_outside(self.templates_dir, folder):
            raise OutsideTemplatesError(outside_message(self.templates_dir, template))
        if not folder.is_dir():
            raise TemplateSourceError(f"template {template!r} does not exist under {self.templates_dir}")
        return folder

    def _resolve_locale(self, template: str, locale: str, meta: TemplateMeta) -> str:
        locales = self.locales(template)
        for candidate in (locale, str(locale).split("-")[0].split("_")[0].lower(), meta.default_locale):
            if candidate in locales:
                return candidate
        raise TemplateSourceError(
            f"{template}: neither locale {locale!r} nor default_locale {meta.default_locale!r} has a "
            f"complete variant (found {list(locales)})"
        )

    def _variant(self, template: str, locale: str) -> _Variant:
        """The cached variant; its files are looked at again (meta, locales, mtimes) every reload_seconds."""
        key = (template, locale)
        variant = self._variants.get(key)
        now = time.monotonic()
        if variant is not None and now - variant.checked_at < self._reload_seconds:
            return variant
        meta = self.meta(template)
        used = self._resolve_locale(template, locale, meta)
        subject_name, text_name = f"{template}/subject.{used}.txt.j2", f"{template}/body.{used}.txt.j2"
        subject, text = (self._template(self._text_env, name) for name in (subject_name, text_name))
        variant = _Variant(
            locale=used,
            variables=tuple(meta.variables),
            subject_name=subject_name,
            subject=subject,
            text_name=text_name,
            text=text,
            html_name=f"{template}/body.{used}.html.j2",
            html=self._html_entry(template, used),
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

    def _template(self, env: jinja2.Environment, name: str) -> jinja2.Template:
        try:
            return env.get_template(name)
        except Exception as exc:
            raise self._translate(exc, name) from None

    def _render(self, tmpl: jinja2.Template, name: str, ns: dict[str, Any], body: bool = False) -> str:
        try:
            out = _render_body(tmpl, name, ns) if body else _render_one(tmpl, ns)
            return check_size(out, self._limits, "the rendered text")
        except EmailTemplateError:
            raise
        except Exception as exc:
            raise self._translate(exc, name) from None

    def _render_html(self, variant: _Variant, ns: dict[str, Any]) -> str:
        name, inlined = variant.html_name, variant.html.inlined
        if inlined is not None:
            try:
                return check_size(_render_body(inlined, name, ns), self._limits)
            except Exception:
                pass  # rendered again below from the real files, for an error naming file and line
        html = self._render(self._template(self._html_env, name), name, ns, body=True)
        if inlined is not None:
            log.warning("pre-inlined %s failed where the original rendered; check kizuna.email.inlining", name)
        return self._inliner.inline(html)

    def _files(self, name: str, seen: set[str] | None = None) -> list[str]:
        """The template and every layout/partial it loads, found by parsing (not by rendering)."""
        seen = set() if seen is None else seen
        if name in seen:
            return []
        seen.add(name)
        source = self._source(name)
        try:
            ast = self._html_env.parse(source, name, self._path(name))
        except jinja2.TemplateSyntaxError as exc:
            raise self._translate(exc, name) from None
        found = [name]
        for ref in jinja2.meta.find_referenced_templates(ast):
            if ref is not None:
                found += self._files(ref, seen)
        return found

    def _source(self, name: str) -> str:
        try:
            return self._html_env.loader.get_source(self._html_env, name)[0]  # type: ignore[union-attr]
        except jinja2.TemplateNotFound:
            raise TemplateSourceError(f"{name} does not exist under {self.templates_dir}") from None

    def _path(self, name: str) -> str:
        return str(self.templates_dir / name)

    def _fingerprint(self, files: list[str]) -> tuple[tuple[str, int], ...]:
        return tuple((f, (self.templates_dir / f).stat().st_mtime_ns) for f in files)

    def _html_entry(self, template: str, locale: str) -> _HtmlEntry:
        name = f"{template}/body.{locale}.html.j2"
        key = (template, locale)
        entry = self._html_cache.get(key)
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
            files = [*self._files(name), f"{template}/meta.yml"]  # the sample proves the inlining
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
            entry = _HtmlEntry(fingerprint, inlined, strategy, [time.monotonic()])
            self._html_cache[key] = entry
            return entry

    def _build_inlined(self, template: str, locale: str, name: str) -> jinja2.Template:
        source = inline_source(self._inliner, flatten(self._source, name))
        try:
            inlined = self._html_env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise InlineOnceUnsafe(f"the inlined source does not compile: {exc}") from None
        # Prove it on the sample: both strategies must give the same document.
        meta = self.meta(template)
        sample = meta.sample_context
        try:
            url = str(sample.get("unsubscribe_url") or self.unsubscribe_url_for(sample))
            ctx = {**sample, "sender": self.sender, "unsubscribe_url": url, "locale": locale}
            with MessageBudget(self._limits, fresh=True):  # the sample's own budget, not the message's being sent
                fast = inlined.render(ctx)
                slow = self._inliner.inline(self._html_env.get_template(name).render(ctx))
        except Exception as exc:
            raise InlineOnceUnsafe(f"cannot verify on sample_context ({type(exc).__name__}: {exc})") from None
        if not same_html(fast, slow):
            raise InlineOnceUnsafe("inlining before rendering gives different HTML on sample_context")
        return inlined

    def _variables_used(self, name: str) -> set[str]:
        used: set[str] = set()
        for file in self._files(name):
            try:  # compiling for introspection finds what parsing does not, e.g. a misspelt filter name
                used |= jinja2.meta.find_undeclared_variables(self._html_env.parse(self._source(file)))
            except jinja2.TemplateSyntaxError as exc:
                raise self._translate(exc, file) from None
        return used

    def _check_compliance(self, template: str, locale: str, html: str, text: str, unsubscribe_url: str) -> None:
        required = (*self._required, ("unsubscribe link", unsubscribe_url, str(escape(unsubscribe_url))))
        for part, absent in (
            ("html", [what for what, value, escaped in required if escaped not in html and value not in html]),
            ("txt", [what for what, value, _ in required if value not in text]),
        ):
            if absent:
                raise ComplianceError(
                    f"{template}/body.{locale}.{part}.j2 does not show the {', '.join(absent)} that "
                    "advertising email must carry (特定電子メール法): extend the _layouts/base layout"
                )

    def _translate(self, exc: BaseException, name: str) -> EmailTemplateError:
        """A kizuna error naming the file and line (from Jinja's rewritten traceback) and what to do."""
        file, line = name, None
        message = ""
        if isinstance(exc, jinja2.TemplateSyntaxError):
            # Introspection (variables used) compiles under a made-up name such as "<introspection>".
            file, line = (exc.name if exc.name and not exc.name.startswith("<") else name), exc.lineno
            message = exc.message or str(exc)
            try:
                unclosed = find_unclosed(self._html_env, self._source(file), exc)
            except EmailTemplateError:
                unclosed = None
            if unclosed is not None:
                line, message = unclosed.line, unclosed.explain(japanese=".ja." in file)
        else:
            tb = exc.__traceback__
            while tb is not None:
                filename = tb.tb_frame.f_code.co_filename
                if filename.endswith(".j2"):
                    file, line = _relative(filename, self.templates_dir), tb.tb_lineno
                tb = tb.tb_next
        if isinstance(exc, EmailTemplateError):  # already says what and where (e.g. a refused link)
            return exc
        if isinstance(exc, RenderLimitExceeded):
            where = f"{file}, line {line}" if line else file
            return TemplateLimitError(f"{where}: {exc}")
        where = f"{file}, line {line}" if line else file
        if isinstance(exc, jinja2.TemplateSyntaxError):
            return TemplateSourceError(f"{where}: syntax error: {message}")
        if isinstance(exc, jinja2.TemplateNotFound):
            return TemplateSourceError(f"{where}: extends or includes {exc.name!r}, which does not exist")
        if isinstance(exc, SecurityError):
            return UnsafeTemplateError(f"{where}: not allowed in email templates: {exc}")
        if isinstance(exc, jinja2.UndefinedError):
            match = _UNDEFINED_NAME.search(str(exc))
            variable = (match.group(1) or match.group(2)) if match else str(exc)
            return MissingVariableError(
                f"{where}: variable {variable!r} is undefined ({exc}); add it to the campaign's selection "
                "and to meta.yml variables, or fix its spelling",
                variable,
            )
        return TemplateRenderError(f"{where}: {type(exc).__name__}: {exc}")


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


def _relative(filename: str, root: Path) -> str:
    try:
        return Path(filename).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return filename

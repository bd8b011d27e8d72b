"""The Jinja sandboxes templates render in, and what they tell about template files: sources, the layouts
and partials one loads, and any exception turned into an error naming the file and line."""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.runtime
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from kizuna.email.errors import (
    EmailTemplateError,
    MissingVariableError,
    OutsideTemplatesError,
    TemplateLimitError,
    TemplateRenderError,
    TemplateSourceError,
    UnsafeTemplateError,
)
from kizuna.email.filters import FILTERS
from kizuna.email.limits import (
    LOOP_FILTER,
    TEXT_FILTER,
    BoundLoops,
    RenderLimitExceeded,
    RenderLimits,
    bounded_filter,
    bounded_loop,
    check_binop,
    check_call,
    check_size,
)
from kizuna.email.paths import is_outside, outside_message
from kizuna.email.syntax import find_unclosed

_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")


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


class Sandboxes:
    """The HTML (autoescaped) and text sandboxes over ``templates_dir``, both within ``limits``."""

    def __init__(self, templates_dir: Path, reload_seconds: float, limits: RenderLimits) -> None:
        self.templates_dir = templates_dir
        loader = _ThrottledLoader(templates_dir, reload_seconds)
        options: dict[str, Any] = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "auto_reload": True,
        }
        self.html = _Sandbox(autoescape=True, **options)
        self.text = _Sandbox(autoescape=False, **options)
        for env in (self.html, self.text):
            env.limits = limits
            # Jinja's own filters are bounded; kizuna's (yen, date_ja, company …) return text about as long as
            # their input, and wrapping them would cost every message ≈ 5% for nothing.
            env.filters = {name: bounded_filter(name, f, limits) for name, f in env.filters.items()}
            env.filters.update(FILTERS)
            env.filters[LOOP_FILTER] = bounded_loop(limits)
            env.filters[TEXT_FILTER] = functools.partial(check_size, limits=limits, what="a `~` join")

    def template(self, env: jinja2.Environment, name: str) -> jinja2.Template:
        try:
            return env.get_template(name)
        except Exception as exc:
            raise self.translate(exc, name) from None

    def files(self, name: str, seen: set[str] | None = None) -> list[str]:
        """The template and every layout/partial it loads, found by parsing (not by rendering)."""
        seen = set() if seen is None else seen
        if name in seen:
            return []
        seen.add(name)
        source = self.source(name)
        try:
            ast = self.html.parse(source, name, self.path(name))
        except jinja2.TemplateSyntaxError as exc:
            raise self.translate(exc, name) from None
        found = [name]
        for ref in jinja2.meta.find_referenced_templates(ast):
            if ref is not None:
                found += self.files(ref, seen)
        return found

    def source(self, name: str) -> str:
        try:
            return self.html.loader.get_source(self.html, name)[0]  # type: ignore[union-attr]
        except jinja2.TemplateNotFound:
            raise TemplateSourceError(f"{name} does not exist under {self.templates_dir}") from None

    def path(self, name: str) -> str:
        return str(self.templates_dir / name)

    def translate(self, exc: BaseException, name: str) -> EmailTemplateError:
        """A kizuna error naming the file and line (from Jinja's rewritten traceback) and what to do."""
        file, line = name, None
        message = ""
        if isinstance(exc, jinja2.TemplateSyntaxError):
            # Introspection (variables used) compiles under a made-up name such as "<introspection>".
            file, line = (exc.name if exc.name and not exc.name.startswith("<") else name), exc.lineno
            message = exc.message or str(exc)
            try:
                unclosed = find_unclosed(self.html, self.source(file), exc)
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
        return _explained(exc, f"{file}, line {line}" if line else file, message)


def _explained(exc: BaseException, where: str, message: str) -> EmailTemplateError:
    if isinstance(exc, RenderLimitExceeded):
        return TemplateLimitError(f"{where}: {exc}")
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


def _relative(filename: str, root: Path) -> str:
    try:
        return Path(filename).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return filename
